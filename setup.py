"""The project's packages and what each part needs. `constraints.txt` pins every version (the Makefile and the
Dockerfile install under it); this file only says *what* is needed, by part:

    pip install -c constraints.txt .                    the pipelines and their rooms (TFX, Beam, reports)
    pip install -c constraints.txt ".[serving]"         + the TF Serving-compatible server (make serve)
    pip install -c constraints.txt ".[spark]"           + bulk scoring with Spark
    pip install -c constraints.txt ".[s3]"              + s3:// roots (AWS S3, MinIO): TensorFlow and Beam
    pip install -c constraints.txt -e ".[serving,spark,s3,dev]"   what `make` installs (dev: the tests)
"""

from setuptools import find_packages, setup

EXTRAS = {
    # httptools and uvloop: uvicorn parses HTTP and runs its loop in C (h11 in pure Python costs more per request
    # than a small model); gRPC and TF Serving's protos come with tfx (tensorflow-serving-api)
    "serving": ["uvicorn", "httptools", "uvloop"],
    "spark": ["pyspark>=3.5,<3.6"],
    # TensorFlow 2.16 has no S3 file system of its own (tensorflow-io registers s3://); Beam's S3 needs boto3
    "s3": ["tensorflow-io", "apache-beam[aws]"],
    # moto in server mode is the tests' S3 (what MinIO speaks); flask and flask-cors are its server's; ruff and
    # import-linter: the style and the rooms' layers (pyproject.toml), checked by make test-fast
    "dev": ["pytest", "pytest-timeout", "moto[s3]", "flask", "flask-cors", "ruff", "import-linter"],
}

ROOMS = (
    "core",
    "data",
    "modeling",
    "serving",
    "components",
    "orchestration",
    "pipelines",
    "metadata",
    "runners",
    "ops",
    "scaffold",
)

setup(
    name="eat-tf2-tfx",
    version="0.1.0",
    description="Production TFX pipelines for the datasets of 'eat_tensorflow2_in_30_days'",
    python_requires=">=3.9,<3.11",
    # every room but testing/ (the test doubles run from the checkout: docs/layout.md)
    packages=find_packages(include=[f"{room}{sub}" for room in ROOMS for sub in ("", ".*")]),
    package_data={"data": ["manifests/*.tsv"], "pipelines": ["*/schema.pbtxt"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "dill==0.3.1.1",  # import tfx.v1 fails without it: Beam ships dill only as an extra
        "matplotlib",  # every local run writes a report with plots
    ],
    extras_require=EXTRAS,
)
