"""Run the material segmentation node on a camera topic, optionally with RViz.

    ros2 launch matseg_ros segment.launch.py image_topic:=/camera/image_raw rviz:=true
    ros2 launch matseg_ros segment.launch.py use_depth:=true depth_topic:=/camera/depth/image_rect_raw
    ros2 launch matseg_ros segment.launch.py cameras:="[front, rear]"    # one model, two cameras
    ros2 launch matseg_ros segment.launch.py cameras:="[front, rear]" image_topic:=/{camera}/camera/image_raw
    ros2 launch matseg_ros segment.launch.py compressed:=true   # image_topic/compressed (JPEG, PNG)
    ros2 launch matseg_ros segment.launch.py lifecycle:=true   # then: ros2 lifecycle set /matseg configure
    ros2 launch matseg_ros segment.launch.py use_depth:=true dose_map:=true pose_topic:=/slam/camera_pose

Arguments left empty (model_path, backend, device, compressed) keep the value of params_file.
ros2 launch accepts undeclared arguments without a word: `--show-args` lists these.
Fast DDS gets the package's large-image profile (config/fastdds_shm.xml) unless
FASTDDS_DEFAULT_PROFILES_FILE is already set; the camera driver needs it too (or
reliable QoS) for best-effort images larger than ~0.5 MB to arrive. With rviz:=true the
launch checks for rviz2 before it starts anything, so a missing rviz2 leaves no node behind.
"""
import os

import yaml

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.logging import get_logger
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from matseg_ros.ros.launch_checks import (CAMERA, TOPIC_ARGUMENTS, TOPIC_DEFAULTS, LaunchArgumentError,
                                          camera_remappings, is_true, require_rviz)

PACKAGE = "matseg_ros"
PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"


def _segment_node(context, *args, **kwargs):
    """Only arguments the user set override params_file, so both can be used together."""
    def value(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {name: value(name) for name in ("model_path", "backend", "device") if value(name)}
    if value("compressed"):
        overrides["compressed"] = is_true(value("compressed"))
    overrides["use_sim_time"] = is_true(value("use_sim_time"))
    overrides["lifecycle"] = is_true(value("lifecycle"))
    overrides["use_depth"] = is_true(value("use_depth"))
    cameras = yaml.safe_load(value("cameras") or "[]") or []
    if not (isinstance(cameras, list) and all(isinstance(c, str) for c in cameras)):
        raise LaunchArgumentError(f"cameras:={value('cameras')!r}: expected a list of namespaces, "
                                  "e.g. cameras:=\"[front, rear]\"")
    if cameras:
        overrides["cameras"] = cameras
        remappings, ignored = camera_remappings(cameras, {a: value(a) for a in TOPIC_ARGUMENTS})
        for warning in ignored:
            get_logger("segment.launch.py").warning(warning)
    else:
        if any(CAMERA in value(a) for a in TOPIC_ARGUMENTS):
            raise LaunchArgumentError(f"{CAMERA} in a topic argument needs cameras:=\"[...]\"")
        image_topic = value("image_topic")
        remappings = [("image", image_topic), ("image/compressed", image_topic + "/compressed"),
                      ("depth", value("depth_topic")), ("camera_info", value("camera_info_topic"))]
    node_type = LifecycleNode if overrides["lifecycle"] else Node
    return [node_type(
        package=PACKAGE,
        executable="segment_node",
        name="matseg",
        namespace=value("namespace"),
        parameters=[value("params_file"), overrides],
        remappings=remappings,
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    actions = [
        DeclareLaunchArgument("image_topic", default_value=TOPIC_DEFAULTS["image_topic"],
                              description="camera topic (sensor_msgs/Image; <topic>/compressed "
                                          "when compressed is set); with cameras, {camera} in it "
                                          "stands for each camera's namespace"),
        DeclareLaunchArgument("compressed", default_value="",
                              description="true: subscribe <image_topic>/compressed "
                                          "(sensor_msgs/CompressedImage); empty: params_file's"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "segment.yaml"),
                              description="node parameters (YAML)"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="model file; empty: params_file's (default: shipped model)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto | onnxruntime | torch; empty: params_file's"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto | cuda | cpu; empty: params_file's"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (Gazebo, bag playback with --clock)"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="also start rviz2 with config/rviz/matseg.rviz"),
        DeclareLaunchArgument("use_depth", default_value="false",
                              description="subscribe depth and camera_info: material cloud, areas, UV-C guidance"),
        DeclareLaunchArgument("depth_topic", default_value=TOPIC_DEFAULTS["depth_topic"],
                              description="depth image registered to the colour image (16UC1 mm or "
                                          "32FC1 m); {camera} as for image_topic"),
        DeclareLaunchArgument("camera_info_topic", default_value=TOPIC_DEFAULTS["camera_info_topic"],
                              description="CameraInfo of the colour camera (intrinsics); {camera} as "
                                          "for image_topic"),
        DeclareLaunchArgument("cameras", default_value="[]",
                              description="several cameras on one model: namespaces, e.g. \"[front, rear]\""),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="start segment_node as a managed (lifecycle) node, unconfigured"),
        DeclareLaunchArgument("dose_map", default_value="false",
                              description="also start dose_mapper on segment_node's material cloud (needs use_depth)"),
        DeclareLaunchArgument("lamp_topic", default_value="/lamp_on",
                              description="dose_mapper's lamp state (std_msgs/Bool)"),
        DeclareLaunchArgument("pose_topic", default_value="/camera/pose",
                              description="dose_mapper's camera pose (geometry_msgs/PoseStamped) with "
                                          "pose_source topic (config/dose_mapper.yaml)"),
    ]
    if PROFILE_VARIABLE not in os.environ:
        actions.append(SetEnvironmentVariable(PROFILE_VARIABLE,
                                              os.path.join(share, "config", "fastdds_shm.xml")))
    actions += [
        OpaqueFunction(function=require_rviz),
        OpaqueFunction(function=_segment_node),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", os.path.join(share, "config", "rviz", "matseg.rviz")],
            parameters=[{"use_sim_time": LaunchConfiguration("use_sim_time")}],
            condition=IfCondition(LaunchConfiguration("rviz")),
            output="screen",
        ),
        Node(
            package=PACKAGE,
            executable="dose_mapper",
            name="dose_mapper",
            namespace=LaunchConfiguration("namespace"),
            parameters=[os.path.join(share, "config", "dose_mapper.yaml"),
                        {"use_sim_time": LaunchConfiguration("use_sim_time")}],
            remappings=[("material_cloud", "matseg/material_cloud"), ("lamp_on", LaunchConfiguration("lamp_topic")),
                        ("pose", LaunchConfiguration("pose_topic"))],
            condition=IfCondition(LaunchConfiguration("dose_map")),
            output="screen",
        ),
    ]
    return LaunchDescription(actions)
