"""Keys of the publish_context the controller hands to the node (ControllerPublish → NodeStage)."""

SUBSYSTEM_NQN = "subsystemNqn"  # NVMe subsystem (the block view) the namespace lives in
TARGETS = "targetAddresses"  # comma-separated host:port of the NVMe/TCP I/O listeners
NGUID = "nguid"  # namespace NGUID (hex)
UUID = "uuid"  # namespace UUID; also names the loop backend's backing file
HOST_NQN = "hostNqn"  # the node the volume was mapped to
