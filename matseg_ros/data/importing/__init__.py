"""`matseg data import`: annotated real photographs into the HRIM2021 layout.

`formats` reads COCO, LabelMe, VOC and class folders; `mapping` maps their categories to
materials; `masks` draws class-id masks (GrabCut for boxes); `command` is the tool.
"""
