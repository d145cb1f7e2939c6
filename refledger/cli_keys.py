"""`refledger keygen`: an Ed25519 key pair for signing events (SPEC §4a)."""

from __future__ import annotations

import click

from refledger.options import format_option
from refledger.render import emit_json


@click.command()
@click.option("--out", default="signing-key.pem", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the private key (PEM, PKCS #8, mode 0600); never overwritten.")
@format_option("table", "json")
def keygen(out, fmt):
    """Make a new Ed25519 key pair for signing events; print the public key.

    The private key goes to --out, readable by you alone (0600); give it to
    `produce --signing-key`. The public key (base64 of its raw 32 bytes) is
    what the operator publishes: a shop's in its `member` event
    (`public_key`), the operator's own in a `policy` event
    (`operator_public_key`).

    Example: refledger keygen --out li-kids.pem
    """
    from refledger.schemas.keys import new_key, public_key_text, write_key_file

    key = new_key()
    path = write_key_file(out, key)
    public = public_key_text(key)
    if fmt == "json":
        emit_json({"private_key_file": str(path), "public_key": public})
    else:
        click.echo(f"私钥已写入 {path}（仅本人可读，切勿外传）")
        click.echo(f"公钥 (public key): {public}")
