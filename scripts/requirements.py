"""Print the project's runtime and dev requirements from pyproject.toml, one a line.

pip cannot install a project's dependency list without building the project itself,
and Earshot is an application, not a distributable package, so `make install` feeds
this list to pip together with constraints.txt.
"""

import sys
import tomllib
from pathlib import Path

data = tomllib.loads(
    Path(__file__).resolve().parent.parent.joinpath("pyproject.toml").read_text()
)
requirements = [*data["project"]["dependencies"], *data["dependency-groups"]["dev"]]
sys.stdout.write("\n".join(requirements) + "\n")
