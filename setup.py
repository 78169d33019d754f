import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "kerasdec" / "version.py").read_text()).group(1)

setup(
    name="kerasdec",
    version=VERSION,
    description="End-to-end surface-defect detection (SegDecNet) in Keras 3 / TensorFlow",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["kerasdec", "kerasdec.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "numpy",
        "scipy",
        "opencv-python-headless",
        "click>=8",
        "tensorboard",
        "matplotlib",
    ],
    extras_require={
        "litert": ["ai-edge-litert"],
        # TF Serving warm-up records (kerasdec/deploy/warmup.py); its version follows TensorFlow's
        "serving": ["tensorflow-serving-api>=2.21,<2.22"],
        "test": ["pytest", "pytest-xdist", "ruff", "import-linter", "scikit-learn", "ai-edge-litert",
                 "tensorflow-serving-api>=2.21,<2.22"],
    },
    entry_points={"console_scripts": ["kerasdec = kerasdec.cli:main"]},
)
