"""Package list for setuptools (everything else is in pyproject.toml).

pyproject's ``packages.find`` cannot add a package that lives outside the
searched tree, so the list is made here: the ``worldcover*`` packages (data
folders such as the JSON schemas included, as pyproject's find did), plus
``worldcover.dags``, which ``[tool.setuptools.package-dir]`` maps to the
top-level ``dags/`` folder.
"""

from setuptools import find_namespace_packages, setup

PACKAGES = find_namespace_packages(include=["worldcover", "worldcover.*"], exclude=["*.__pycache__"])
setup(packages=sorted(PACKAGES + ["worldcover.dags"]))
