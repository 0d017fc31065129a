"""Gazebo simulation: the hri_lab world, the bridge, the segmentation node and its live score.

    ros2 launch matseg_ros sim.launch.py                       # Gazebo GUI + node + evaluator
    ros2 launch matseg_ros sim.launch.py rviz:=true            # also rviz2
    ros2 launch matseg_ros sim.launch.py record:=true record_dir:=~/sim_dataset
    ros2 launch matseg_ros sim.launch.py gz_args:="-r -s --headless-rendering"   # no GUI

Gazebo finds model://matseg_bot through GZ_SIM_RESOURCE_PATH (the package's
gazebo_worlds/models is appended); the world's textures are relative to the world file.
segment_node reads /camera/image_raw with use_sim_time (and, with use_depth, the depth
camera's /camera/depth/image_raw and the RGB camera's /camera/camera_info); sim_evaluator pairs its
/matseg/raw_segmentation_mask with the segmentation camera's /segmentation/labels_map.
Fast DDS gets config/fastdds_shm.xml unless FASTDDS_DEFAULT_PROFILES_FILE is set.
Other packages' files (ros_gz_sim) are found at launch time, so `--show-args` and
`--print` work where they are not installed; rviz:=true without rviz2 stops before
anything starts.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (AppendEnvironmentVariable, DeclareLaunchArgument, IncludeLaunchDescription,
                            OpaqueFunction, SetEnvironmentVariable)
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from matseg_ros.ros.launch_checks import require_rviz

PACKAGE = "matseg_ros"
PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
RESOURCE_VARIABLE = "GZ_SIM_RESOURCE_PATH"
# ROS topics of config/bridge/hri_lab.yaml, and segment_node's output (node name matseg)
IMAGE_TOPIC = "/camera/image_raw"
DEPTH_TOPIC = "/camera/depth/image_raw"  # registered to the RGB camera: its camera_info applies
INFO_TOPIC = "/camera/camera_info"
LABELS_TOPIC = "/segmentation/labels_map"
PREDICTION_TOPIC = "/matseg/raw_segmentation_mask"


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    config = LaunchConfiguration
    sim_time = {"use_sim_time": True}
    actions = [
        DeclareLaunchArgument("world", default_value=os.path.join(share, "gazebo_worlds", "hri_lab.sdf"),
                              description="SDF world to simulate"),
        DeclareLaunchArgument("gz_args", default_value="-r",
                              description="extra gz sim arguments (-r: run at start; "
                                          "-s --headless-rendering: no GUI)"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="segmentation model; empty: config/segment.yaml's"),
        DeclareLaunchArgument("device", default_value="", description="auto | cuda | cpu; empty: segment.yaml's"),
        DeclareLaunchArgument("use_depth", default_value="true",
                              description="segment_node with the depth camera: material cloud, areas, "
                                          "UV-C guidance"),
        DeclareLaunchArgument("evaluate", default_value="true",
                              description="run sim_evaluator against the segmentation camera"),
        DeclareLaunchArgument("report_dir", default_value="",
                              description="sim_evaluator report folder; empty: ~/.ros/matseg_sim_eval/<time>"),
        DeclareLaunchArgument("record", default_value="false",
                              description="run dataset_recorder (HRIM2021 layout) while you drive"),
        DeclareLaunchArgument("record_dir", default_value="sim_dataset",
                              description="dataset_recorder output folder"),
        DeclareLaunchArgument("rviz", default_value="false", description="start rviz2 with config/rviz/sim.rviz"),
        AppendEnvironmentVariable(RESOURCE_VARIABLE, os.path.join(share, "gazebo_worlds", "models")),
    ]
    if PROFILE_VARIABLE not in os.environ:
        actions.append(SetEnvironmentVariable(PROFILE_VARIABLE, os.path.join(share, "config", "fastdds_shm.xml")))

    gz_launch = PathJoinSubstitution([FindPackageShare("ros_gz_sim"), "launch", "gz_sim.launch.py"])
    segment_launch = os.path.join(share, "launch", "segment.launch.py")
    actions += [
        OpaqueFunction(function=require_rviz),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(gz_launch),
            launch_arguments={"gz_args": [config("gz_args"), " ", config("world")],
                              "on_exit_shutdown": "true"}.items()),
        Node(
            package="ros_gz_bridge",
            executable="parameter_bridge",
            name="hri_lab_bridge",
            parameters=[{"config_file": os.path.join(share, "config", "bridge", "hri_lab.yaml"), **sim_time}],
            output="screen",
        ),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(segment_launch),
            launch_arguments={"image_topic": IMAGE_TOPIC, "use_sim_time": "true", "rviz": "false",
                              "model_path": config("model_path"), "device": config("device"),
                              "use_depth": config("use_depth"), "depth_topic": DEPTH_TOPIC,
                              "camera_info_topic": INFO_TOPIC}.items()),
        Node(
            package=PACKAGE,
            executable="sim_evaluator",
            name="sim_evaluator",
            parameters=[{"report_dir": config("report_dir"), **sim_time}],
            remappings=[("prediction", PREDICTION_TOPIC), ("ground_truth", LABELS_TOPIC)],
            condition=IfCondition(config("evaluate")),
            output="screen",
        ),
        Node(
            package=PACKAGE,
            executable="dataset_recorder",
            name="dataset_recorder",
            parameters=[{"output_dir": config("record_dir"), **sim_time}],
            remappings=[("image", IMAGE_TOPIC), ("ground_truth", LABELS_TOPIC)],
            condition=IfCondition(config("record")),
            output="screen",
        ),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", os.path.join(share, "config", "rviz", "sim.rviz")],
            parameters=[sim_time],
            condition=IfCondition(config("rviz")),
            output="screen",
        ),
    ]
    return LaunchDescription(actions)
