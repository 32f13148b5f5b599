"""The image tool for "thinking with images": crop a region of an image of the episode and zoom into it.

Arguments: ``box`` [x1, y1, x2, y2] in the pixel coordinates of that image, ``image`` its index (0: the
prompt's first image; the crops a tool returned are numbered after the prompt's). The region is clipped to the
image, must be at least 2 x 2 pixels, and is resized so its longer side is ``ZOOM_SIDE`` pixels (nearest
neighbour, so a small mark stays sharp); the crop is added to the conversation as a new image.
"""

from __future__ import annotations

from openrlhf.rollout.tools.base import Tool, ToolContext, ToolError, ToolResult

ZOOM_SIDE = 56


def _box(value) -> tuple[float, float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise ToolError("crop: box must be [x1, y1, x2, y2]")
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ToolError("crop: box must hold four numbers") from None
    return x1, y1, x2, y2


def crop_and_zoom(image, box, side: int = ZOOM_SIDE):
    """``image`` cut to ``box`` (clipped to it) and scaled so its longer side is ``side`` pixels."""
    from PIL import Image

    x1, y1, x2, y2 = _box(box)
    width, height = image.size
    left, top = max(0, min(x1, x2)), max(0, min(y1, y2))
    right, bottom = min(width, max(x1, x2)), min(height, max(y1, y2))
    if right - left < 2 or bottom - top < 2:
        raise ToolError(f"crop: the box {list(box)} leaves less than 2 x 2 pixels of the {width} x {height} image")
    region = image.crop((int(left), int(top), int(round(right)), int(round(bottom))))
    scale = side / max(region.size)
    size = (max(1, round(region.size[0] * scale)), max(1, round(region.size[1] * scale)))
    return region.resize(size, Image.NEAREST)


def _run(arguments: dict, context: ToolContext) -> ToolResult:
    CROP.required(arguments)
    index = arguments.get("image", 0)
    if not isinstance(index, int) or not 0 <= index < len(context.images):
        raise ToolError(f"crop: image must be an index in [0, {len(context.images)}) (the episode's images)")
    zoomed = crop_and_zoom(context.images[index], arguments["box"])
    return ToolResult(f"cropped image {index} to {list(arguments['box'])}", images=[zoomed])


CROP = Tool(
    name="crop",
    description="Crop a region of an image and zoom into it; the crop is shown to you as a new image.",
    parameters={
        "type": "object",
        "properties": {
            "box": {"type": "array", "items": {"type": "number"}, "description": "[x1, y1, x2, y2] in pixels"},
            "image": {"type": "integer", "description": "which image (0: the first)", "default": 0},
        },
        "required": ["box"],
    },
    run=_run,
)
