"""The material cloud as a sensor_msgs/PointCloud2 message: the fields `runtime.depth` packs
(x, y, z, rgb, label, confidence), in the colour camera's optical frame."""
from __future__ import annotations

import sys
from typing import Any

from sensor_msgs.msg import PointCloud2, PointField

from ..runtime.depth import PackedCloud, cloud_fields

FIELDS = [PointField(name=name, offset=offset, datatype=datatype, count=count)
          for name, offset, datatype, count in cloud_fields()]


def cloud_message(cloud: PackedCloud, header: Any) -> PointCloud2:
    """A PointCloud2 with the colour frame's header (its stamp and optical frame_id)."""
    if sys.byteorder != "little":
        raise RuntimeError("the cloud is packed little-endian; this host is big-endian")
    return PointCloud2(header=header, height=cloud.height, width=cloud.width, fields=FIELDS,
                       is_bigendian=False, point_step=cloud.point_step, row_step=cloud.row_step,
                       data=cloud.tobytes(), is_dense=cloud.is_dense)
