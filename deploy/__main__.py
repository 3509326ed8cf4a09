"""`python -m deploy package --stage dev`: the stage's CloudFormation template and code bundle under build/package/.

`make package` runs this. It writes the merge template and the IAM policy generated from the code to
build/deploy/<stage>/ (the stage's `iam_policy_file` in .chalice/config.json points there), then runs
`chalice package --merge-template` into build/package/<stage>/ (sam.json + deployment.zip).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from deploy.template import ROOT, write

GENERATED = ROOT / "build" / "deploy"
PACKAGED = ROOT / "build" / "package"


def package(stage: str, out: Path | None = None) -> Path:
    """Generate the stage's infrastructure and package the app with it; returns the template's path."""
    merge, _ = write(stage, GENERATED / stage)
    out = out or PACKAGED / stage
    if out.exists():
        shutil.rmtree(out)
    # `chalice package` needs a region (the template itself names none: it uses AWS::Region), no credentials.
    env = {**os.environ}
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
    chalice = Path(sys.executable).parent / "chalice"
    subprocess.run([str(chalice), "package", "--stage", stage, "--merge-template", str(merge), str(out)],
                   cwd=ROOT, env=env, check=True)
    return out / "sam.json"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    pkg = sub.add_parser("package", help="generate the infrastructure and run chalice package")
    pkg.add_argument("--stage", default="dev")
    pkg.add_argument("--out", type=Path, default=None)
    gen = sub.add_parser("generate", help="only write the merge template and the policy (build/deploy/<stage>/)")
    gen.add_argument("--stage", default="dev")
    args = parser.parse_args()
    started = time.monotonic()
    if args.command == "generate":
        merge, policy = write(args.stage, GENERATED / args.stage)
        print(f"{merge}\n{policy}")
        return
    template = package(args.stage, args.out)
    print(f"{template} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
