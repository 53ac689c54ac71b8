"""Installs the project's packages; the pinned dependency set is constraints.txt (see the Makefile)."""
from setuptools import find_packages, setup

setup(
    name="eat-tf2-tfx",
    version="0.1.0",
    description="Production TFX pipelines for the datasets of 'eat_tensorflow2_in_30_days'",
    python_requires=">=3.9,<3.11",
    packages=find_packages(include=["pipelines", "pipelines.*", "components", "components.*", "data", "serving", "serving.*"]),
    package_data={"data": ["manifests/*.tsv"], "pipelines": ["*/schema.pbtxt"]},
    install_requires=["tfx[kfp]==1.16.0", "dill==0.3.1.1"],
)
