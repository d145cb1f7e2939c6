"""Compiles the hot path's modules (refledger/compiled.py: ACCELERATED) with Cython, beside their
source, each with the digest of the source it was built from. Everything else is in pyproject.toml.
Without Cython or a C compiler the install goes on, and those modules run as Python.

A compiled module's file is ``<leaf>.compiled<suffix>`` (``traffic.compiled.cpython-311-…so``): a
name Python's own finder never takes for the module, so only refledger's finder, which checks the
digest, ever loads it (an older checkout of the source beside it, or a module no longer compiled,
runs as Python)."""

import os
import runpy
import tomllib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
COMPILED = runpy.run_path(str(HERE / "refledger" / "compiled.py"))
LEAVES = {name.rpartition(".")[2] for name in COMPILED["ACCELERATED"]}
PACKAGE_DIRS = tomllib.loads((HERE / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


def source_of(module: str) -> str:
    package, _, leaf = module.rpartition(".")
    return f"{PACKAGE_DIRS[package]}/{leaf}.py"


def digest_of(module: str) -> str:
    return COMPILED["source_digest"](str(HERE / source_of(module)))


def package_tree(root: Path) -> Path:
    """A tree of links laid out as the packages are named (``refledger/schemas`` is ``schemas/``),
    where Cython finds the ``.pxd`` beside a module (``schemas/traffic.pxd``), which types some of
    its locals when compiled. Packages are one level below ``refledger``: the links stand in a
    folder of this tree's own, never in the source."""
    for package, folder in PACKAGE_DIRS.items():
        if "." not in package:  # the top package itself: an empty folder holding the links
            continue
        if package.count(".") != 1:
            raise ValueError(f"{package}: only packages one level below the top one are laid out")
        link = root.joinpath(*package.split("."))
        link.parent.mkdir(parents=True, exist_ok=True)
        (link.parent / "__init__.pxd").touch()
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(HERE / folder, target_is_directory=True)
    return root


class DigestedBuildExt(build_ext):
    """Cythonizes the modules when it runs, compiles them side by side, and gives each one built in
    this run the digest its source had before the build began, in the build and in place; one that
    does not build (each is optional) is reported, and any compiled file of it left in place from an
    earlier build is removed, so that it runs as Python."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1  # the modules compile side by side
        self._digests = {}
        self._built = set()

    def get_ext_filename(self, fullname):
        name = super().get_ext_filename(fullname)
        # (distutils asks with the module's last name alone for the build's own path)
        if fullname not in COMPILED["ACCELERATED"] and fullname not in LEAVES:
            return name
        return os.path.join(os.path.dirname(name), COMPILED["compiled_name"](fullname.rpartition(".")[2]))

    def run(self):
        self._digests = {ext.name: digest_of(ext.name) for ext in self.extensions}
        try:
            from Cython.Build import cythonize

            # force: compiler directives may have changed though the source has not
            translated = cythonize([Extension(ext.name, ext.sources) for ext in self.extensions],
                                   build_dir="build/cython", quiet=True, force=True, exclude_failures=True,
                                   include_path=[str(package_tree(HERE / "build" / "include"))],
                                   compiler_directives={"language_level": 3, "binding": True,
                                                        # annotations document; they refuse no value
                                                        "annotation_typing": False})
            c_sources = {ext.name: ext.sources for ext in translated}
            # the same Extension objects (build_ext has set them up), their sources now C; one Cython
            # could not translate is left out
            self.extensions[:] = [ext for ext in self.extensions if ext.name in c_sources]
            for ext in self.extensions:
                ext.sources = c_sources[ext.name]
            super().run()
        except Exception as exc:  # no Cython, no C compiler at all
            print(f"warning: the hot path stays Python (its modules were not compiled: {exc})")
            self._remove_in_place(COMPILED["ACCELERATED"])

    def build_extension(self, ext):
        super().build_extension(ext)  # a failure is reported by build_ext (the extension is optional)
        self._built.add(ext.name)
        self._digest_beside(Path(self.get_ext_fullpath(ext.name)), ext.name)

    def copy_extensions_to_source(self):
        super().copy_extensions_to_source()
        build_py = self.get_finalized_command("build_py")
        in_place = set()
        for ext in self.extensions:
            inplace, _regular = self._get_inplace_equivalent(build_py, ext)
            if ext.name in self._built and Path(inplace).exists():
                self._digest_beside(Path(inplace), ext.name)
                in_place.add(ext.name)
        self._remove_in_place(set(COMPILED["ACCELERATED"]) - in_place)

    def _remove_in_place(self, names) -> None:
        for name in names:
            package, _, leaf = name.rpartition(".")
            folder = HERE / PACKAGE_DIRS[package]
            for stale in (*folder.glob(f"{leaf}{COMPILED['COMPILED_MARK']}.*"),
                          folder / f"{leaf}{COMPILED['DIGEST_SUFFIX']}"):
                stale.unlink(missing_ok=True)

    def _digest_beside(self, built: Path, name: str) -> None:
        leaf = name.rpartition(".")[2]
        (built.parent / (leaf + COMPILED["DIGEST_SUFFIX"])).write_text(self._digests[name] + "\n")


setup(ext_modules=[Extension(name, [source_of(name)], optional=True) for name in COMPILED["ACCELERATED"]],
      cmdclass={"build_ext": DigestedBuildExt})
