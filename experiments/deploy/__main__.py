"""`python -m experiments.deploy init|up|status|down ...`: the same as `peel deploy ...`."""

import argparse
import sys

from experiments.deploy.cli import add_parser, main
from experiments.quiet import go_offline

go_offline()
parser = argparse.ArgumentParser(prog="python -m experiments.deploy")
add_parser(parser.add_subparsers(dest="command", required=True))
sys.exit(main(parser.parse_args(["deploy", *sys.argv[1:]])))
