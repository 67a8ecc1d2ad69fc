"""The ReShare <-> WMS Circulation bridge: the domain layer shared by every Lambda function."""
