"""Datasets -> one Sample type; chat templates and task prompts; image loading; synthetic demo tasks.

Torch-free: only PIL, PyYAML, json and (lazily, for parquet) Hugging Face datasets.
"""

from openrlhf.data.errors import DatasetError, RowError
from openrlhf.data.images import ImageError, load_image, load_images, processor_image_kwargs, resolve_image_path
from openrlhf.data.loader import FileInfo, LoadResult, load_samples
from openrlhf.data.prompts import R1_THINK_ANSWER_SUFFIX, build_prompt_text, prompt_messages
from openrlhf.data.sample import TASKS, Sample
from openrlhf.data.tasks import normalize_task

__all__ = [
    "TASKS",
    "DatasetError",
    "FileInfo",
    "ImageError",
    "LoadResult",
    "R1_THINK_ANSWER_SUFFIX",
    "RowError",
    "Sample",
    "build_prompt_text",
    "load_image",
    "load_images",
    "load_samples",
    "normalize_task",
    "processor_image_kwargs",
    "prompt_messages",
    "resolve_image_path",
]
