"""AWS DMS faults, named by their exact error codes.

Each fault serialises as HTTP 400 with ``{"__type": code, "message": ...}``, which botocore
turns into a ``ClientError`` whose ``response["Error"]["Code"]`` is the class name.
"""

from __future__ import annotations


class DmsFault(Exception):
    """Base class: an error the DMS API returns to the caller."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        """The AWS error code (the class name)."""
        return type(self).__name__


class ResourceNotFoundFault(DmsFault):
    """The resource could not be found."""


class ResourceAlreadyExistsFault(DmsFault):
    """The resource you are attempting to create already exists."""


class InvalidResourceStateFault(DmsFault):
    """The resource is in a state that prevents it from being used for database migration."""


class InvalidParameterValueException(DmsFault):
    """A parameter value is not valid (not in the service model, but returned by DMS)."""


class InvalidParameterCombinationException(DmsFault):
    """Parameters that cannot be used together (not in the model, returned by DMS)."""


class ResourceQuotaExceededFault(DmsFault):
    """The quota for this resource quota has been exceeded."""


class S3ResourceNotFoundFault(DmsFault):
    """A specified Amazon S3 bucket, bucket folder, or other object can't be found."""


class InvalidCertificateFault(DmsFault):
    """The certificate was not valid."""


class InvalidSubnet(DmsFault):
    """The subnet provided isn't valid."""


class ReplicationSubnetGroupDoesNotCoverEnoughAZs(DmsFault):
    """The replication subnet group does not cover enough Availability Zones (at least two)."""


class InvalidAction(DmsFault):
    """The operation is not one that localdms implements (AWS's generic code)."""


class SerializationException(DmsFault):
    """The request body is not valid JSON (AWS's generic code for the JSON protocols)."""


class SNSInvalidTopicFault(DmsFault):
    """The SNS topic is invalid (it does not exist)."""


class SNSNoAuthorizationFault(DmsFault):
    """You are not authorized for the SNS subscription."""
