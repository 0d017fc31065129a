"""Run the material segmentation node on a camera topic, optionally with RViz.

    ros2 launch matseg_ros segment.launch.py image_topic:=/camera/image_raw rviz:=true

Arguments left empty (model_path, backend, device) keep the value of params_file.
Fast DDS gets the package's large-image profile (config/fastdds_shm.xml) unless
FASTDDS_DEFAULT_PROFILES_FILE is already set; the camera driver needs it too (or
reliable QoS) for best-effort images larger than ~0.5 MB to arrive.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "matseg_ros"
PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"


def _segment_node(context, *args, **kwargs):
    """Only arguments the user set override params_file, so both can be used together."""
    def value(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {name: value(name) for name in ("model_path", "backend", "device") if value(name)}
    overrides["use_sim_time"] = value("use_sim_time").lower() in ("true", "1", "yes")
    image_topic = value("image_topic")
    return [Node(
        package=PACKAGE,
        executable="segment_node",
        name="matseg",
        namespace=value("namespace"),
        parameters=[value("params_file"), overrides],
        remappings=[("image", image_topic), ("image/compressed", image_topic + "/compressed")],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    actions = [
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="camera topic (sensor_msgs/Image; <topic>/compressed "
                                          "when the compressed parameter is set)"),
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
    ]
    if PROFILE_VARIABLE not in os.environ:
        actions.append(SetEnvironmentVariable(PROFILE_VARIABLE,
                                              os.path.join(share, "config", "fastdds_shm.xml")))
    actions += [
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
    ]
    return LaunchDescription(actions)
