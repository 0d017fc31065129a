"""Clouds as sensor_msgs/PointCloud2 messages: the material cloud `runtime.depth` packs (x, y, z,
rgb, label, confidence, in the colour camera's optical frame) and any little-endian records."""
from __future__ import annotations

import sys
from typing import Any

from sensor_msgs.msg import PointCloud2, PointField

from ..runtime.depth import PackedCloud, cloud_fields

FIELDS = [PointField(name=name, offset=offset, datatype=datatype, count=count)
          for name, offset, datatype, count in cloud_fields()]


def cloud_message(cloud: PackedCloud, header: Any) -> PointCloud2:
    """A PointCloud2 with the colour frame's header (its stamp and optical frame_id)."""
    return records_message(cloud.points, FIELDS, header, cloud.is_dense)


def records_message(records: Any, fields: list[PointField], header: Any, is_dense: bool) -> PointCloud2:
    """A PointCloud2 of a structured array (height x width, or one row of N) laid out as `fields`."""
    if sys.byteorder != "little":
        raise RuntimeError("the cloud is packed little-endian; this host is big-endian")
    grid = records.reshape(1, -1) if records.ndim == 1 else records
    return PointCloud2(header=header, height=grid.shape[0], width=grid.shape[1], fields=fields,
                       is_bigendian=False, point_step=grid.dtype.itemsize,
                       row_step=grid.dtype.itemsize * grid.shape[1], data=grid.tobytes(), is_dense=is_dense)
