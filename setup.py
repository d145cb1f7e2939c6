"""Compiles the hot path's modules (refledger/compiled.py: ACCELERATED) with Cython, beside their
source, each with the digest of the source it was built from. Everything else is in pyproject.toml.
Without Cython or a C compiler the install goes on, and those modules run as Python."""

import hashlib
import os
import runpy
import tomllib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
COMPILED = runpy.run_path(str(HERE / "refledger" / "compiled.py"))
PACKAGE_DIRS = tomllib.loads((HERE / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


def source_of(module: str) -> str:
    package, _, leaf = module.rpartition(".")
    return f"{PACKAGE_DIRS[package]}/{leaf}.py"


class DigestedBuildExt(build_ext):
    """Each compiled module gets the digest of its source beside it, in the build and in place.
    The modules are optional extensions: one that does not build is reported and stays Python."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1  # the modules compile side by side

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no C compiler at all
            print(f"warning: the hot path stays Python (its modules were not compiled: {exc})")

    def build_extension(self, ext):
        super().build_extension(ext)  # a failure is reported by build_ext (the extension is optional)
        self._digest_beside(Path(self.get_ext_fullpath(ext.name)), ext)

    def copy_extensions_to_source(self):
        super().copy_extensions_to_source()
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            inplace, _regular = self._get_inplace_equivalent(build_py, ext)
            if Path(inplace).exists():
                self._digest_beside(Path(inplace), ext)

    @staticmethod
    def _digest_beside(built: Path, ext) -> None:
        leaf = ext.name.rpartition(".")[2]
        digest = hashlib.sha256((HERE / source_of(ext.name)).read_bytes()).hexdigest()
        (built.parent / (leaf + COMPILED["DIGEST_SUFFIX"])).write_text(digest + "\n")


def extensions():
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("warning: Cython is not installed: the hot path stays Python")
        return []
    modules = [Extension(name, [source_of(name)], optional=True) for name in COMPILED["ACCELERATED"]]
    return cythonize(modules, build_dir="build/cython", quiet=True, force=True,  # directives may have changed
                     compiler_directives={"language_level": 3, "binding": True,
                                          # the annotations document; they never refuse a value
                                          "annotation_typing": False})


setup(ext_modules=extensions(), cmdclass={"build_ext": DigestedBuildExt})
