"""What the event names, error codes and findings mean: data that pages, detections and alerts iterate over.

Keep every list of names here, never as strings scattered in pages or rules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UseCase:
    """One daily question, answered by the events named here."""

    key: str
    title: str
    event_source: str
    event_names: tuple[str, ...]
    description: str


SECURITY_GROUP_EVENTS = (
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "ModifySecurityGroupRules",
    "UpdateSecurityGroupRuleDescriptionsIngress",
    "UpdateSecurityGroupRuleDescriptionsEgress",
)

NETWORK_ACL_EVENTS = (
    "CreateNetworkAcl",
    "DeleteNetworkAcl",
    "CreateNetworkAclEntry",
    "DeleteNetworkAclEntry",
    "ReplaceNetworkAclEntry",
    "ReplaceNetworkAclAssociation",
)

ROUTE_TABLE_EVENTS = (
    "CreateRouteTable",
    "DeleteRouteTable",
    "CreateRoute",
    "DeleteRoute",
    "ReplaceRoute",
    "AssociateRouteTable",
    "DisassociateRouteTable",
    "ReplaceRouteTableAssociation",
)

VPC_EVENTS = (
    "CreateVpc",
    "DeleteVpc",
    "ModifyVpcAttribute",
    "CreateSubnet",
    "DeleteSubnet",
    "ModifySubnetAttribute",
    "CreateInternetGateway",
    "DeleteInternetGateway",
    "AttachInternetGateway",
    "DetachInternetGateway",
    "CreateNatGateway",
    "DeleteNatGateway",
    "CreateVpcPeeringConnection",
    "AcceptVpcPeeringConnection",
    "DeleteVpcPeeringConnection",
    "RejectVpcPeeringConnection",
    "CreateVpcEndpoint",
    "DeleteVpcEndpoints",
    "CreateFlowLogs",
    "DeleteFlowLogs",
)

NETWORK_EVENTS = SECURITY_GROUP_EVENTS + NETWORK_ACL_EVENTS + ROUTE_TABLE_EVENTS + VPC_EVENTS

INSTANCE_EVENTS = (
    "RunInstances",
    "StartInstances",
    "StopInstances",
    "RebootInstances",
    "TerminateInstances",
    "ModifyInstanceAttribute",
    "ModifyInstanceMetadataOptions",
    "MonitorInstances",
    "UnmonitorInstances",
    "AssociateIamInstanceProfile",
    "ReplaceIamInstanceProfileAssociation",
    "CreateKeyPair",
    "ImportKeyPair",
    "DeleteKeyPair",
    "GetPasswordData",
    "SendSSHPublicKey",
    "SendSerialConsoleSSHPublicKey",
)

ELASTIC_IP_EVENTS = (
    "AllocateAddress",
    "AssociateAddress",
    "DisassociateAddress",
    "ReleaseAddress",
    "ModifyAddressAttribute",
    "ResetAddressAttribute",
)

IAM_USER_EVENTS = (
    "CreateUser",
    "DeleteUser",
    "UpdateUser",
    "TagUser",
    "UntagUser",
    "AddUserToGroup",
    "RemoveUserFromGroup",
)
IAM_GROUP_EVENTS = ("CreateGroup", "DeleteGroup", "UpdateGroup")
IAM_ROLE_EVENTS = (
    "CreateRole",
    "DeleteRole",
    "UpdateRole",
    "UpdateAssumeRolePolicy",
    "TagRole",
    "UntagRole",
    "CreateServiceLinkedRole",
    "DeleteServiceLinkedRole",
    "AddRoleToInstanceProfile",
    "RemoveRoleFromInstanceProfile",
    "CreateInstanceProfile",
    "DeleteInstanceProfile",
)
IAM_POLICY_EVENTS = (
    "CreatePolicy",
    "DeletePolicy",
    "CreatePolicyVersion",
    "DeletePolicyVersion",
    "SetDefaultPolicyVersion",
    "AttachUserPolicy",
    "DetachUserPolicy",
    "AttachGroupPolicy",
    "DetachGroupPolicy",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "PutUserPolicy",
    "DeleteUserPolicy",
    "PutGroupPolicy",
    "DeleteGroupPolicy",
    "PutRolePolicy",
    "DeleteRolePolicy",
    "PutUserPermissionsBoundary",
    "DeleteUserPermissionsBoundary",
    "PutRolePermissionsBoundary",
    "DeleteRolePermissionsBoundary",
)
IAM_CREDENTIAL_EVENTS = (
    "CreateLoginProfile",
    "UpdateLoginProfile",
    "DeleteLoginProfile",
    "CreateAccessKey",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "CreateVirtualMFADevice",
    "DeleteVirtualMFADevice",
    "EnableMFADevice",
    "DeactivateMFADevice",
    "ResyncMFADevice",
    "ChangePassword",
    "UpdateAccountPasswordPolicy",
    "DeleteAccountPasswordPolicy",
    "UploadSSHPublicKey",
    "DeleteSSHPublicKey",
    "UploadSigningCertificate",
    "DeleteSigningCertificate",
    "CreateServiceSpecificCredential",
    "DeleteServiceSpecificCredential",
    "CreateSAMLProvider",
    "UpdateSAMLProvider",
    "DeleteSAMLProvider",
    "CreateOpenIDConnectProvider",
    "DeleteOpenIDConnectProvider",
)
IAM_EVENTS = IAM_USER_EVENTS + IAM_GROUP_EVENTS + IAM_ROLE_EVENTS + IAM_POLICY_EVENTS + IAM_CREDENTIAL_EVENTS

USE_CASES: dict[str, UseCase] = {
    use_case.key: use_case
    for use_case in (
        UseCase(
            "network",
            "Network & security groups",
            "ec2.amazonaws.com",
            NETWORK_EVENTS,
            "Who changed a security group, network ACL, route table, VPC or gateway, and how.",
        ),
        UseCase(
            "instances",
            "EC2 instances",
            "ec2.amazonaws.com",
            INSTANCE_EVENTS,
            "Which instances were launched, started, stopped, rebooted or terminated, and by whom.",
        ),
        UseCase(
            "elastic_ips",
            "Elastic IPs",
            "ec2.amazonaws.com",
            ELASTIC_IP_EVENTS,
            "Elastic IPs allocated, associated, disassociated and released.",
        ),
        UseCase(
            "iam",
            "IAM",
            "iam.amazonaws.com",
            IAM_EVENTS,
            "Changes to IAM users, groups, roles, policies, login profiles, access keys and MFA devices.",
        ),
    )
}

# --- Security --------------------------------------------------------------

# Error codes that mean the caller was not allowed to do what it tried.
UNAUTHORIZED_ERROR_CODES = (
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "Client.UnauthorizedOperation",
    "UnauthorizedAccess",
    "UnauthorizedException",
    "NotAuthorized",
    "NotAuthorizedException",
    "AuthorizationError",
    "AuthorizationErrorException",
    "AuthFailure",
    "Forbidden",
    "ForbiddenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "VpceAccessDenied",
)
# Substrings that also mark an unauthorized error code ("*NotAuthorized*" and kin).
UNAUTHORIZED_ERROR_CODE_PATTERNS = ("AccessDenied", "Unauthorized", "NotAuthorized", "Forbidden")

CONSOLE_LOGIN_EVENT = "ConsoleLogin"

# Calls that change who may do what: counted by the privilege-change-spree detection.
PRIVILEGE_CHANGE_EVENTS = (
    IAM_USER_EVENTS
    + IAM_GROUP_EVENTS
    + IAM_ROLE_EVENTS
    + IAM_POLICY_EVENTS
    + IAM_CREDENTIAL_EVENTS
    + SECURITY_GROUP_EVENTS
    + (
        "PutBucketPolicy",
        "DeleteBucketPolicy",
        "PutBucketAcl",
        "PutObjectAcl",
        "PutBucketPublicAccessBlock",
        "DeleteBucketPublicAccessBlock",
        "PutKeyPolicy",
        "CreateGrant",
        "RevokeGrant",
        "ScheduleKeyDeletion",
        "DisableKey",
    )
)

TRAIL_TAMPERING_EVENTS = (
    "StopLogging",
    "DeleteTrail",
    "UpdateTrail",
    "PutEventSelectors",
    "PutInsightSelectors",
    "DeleteEventDataStore",
)

# Calls that switch logging or its selectors on or off: the explanation of a gap in the digest chain.
LOGGING_GAP_EVENTS = ("StopLogging", "StartLogging", "UpdateTrail", "PutEventSelectors")

# Calls that switch off a detective control (GuardDuty, Config, Security Hub, Access Analyzer).
DETECTOR_DISABLING_EVENTS = (
    "DeleteDetector",
    "UpdateDetector",
    "DisassociateFromMasterAccount",
    "DisassociateFromAdministratorAccount",
    "DeleteMembers",
    "StopConfigurationRecorder",
    "DeleteConfigurationRecorder",
    "DeleteDeliveryChannel",
    "DisableSecurityHub",
    "DeleteAnalyzer",
)

ACCESS_KEY_CREATION_EVENTS = ("CreateAccessKey",)
# Single calls some alert rules watch for.
USER_CREATION_EVENTS = ("CreateUser",)
INSTANCE_TERMINATION_EVENTS = ("TerminateInstances",)
ELASTIC_IP_RELEASE_EVENTS = ("ReleaseAddress",)
ADMIN_POLICY_ARNS = ("arn:aws:iam::aws:policy/AdministratorAccess",)
ADMIN_PORTS = (22, 3389, 3306, 5432, 1433, 1521, 6379, 9200, 27017)
WORLD_CIDRS = ("0.0.0.0/0", "::/0")

# Source "IP" values that are AWS itself, not a place on Earth.
AWS_INTERNAL_SOURCES = ("AWS Internal",)
AWS_SERVICE_SOURCE_SUFFIX = ".amazonaws.com"

SEVERITIES = ("low", "medium", "high", "critical")

FINDING_TYPES: dict[str, str] = {
    "unauthorized_burst": "Burst of calls refused as unauthorized",
    "console_login_failure_burst": "Burst of failed console sign-ins",
    "console_login_without_mfa": "Console sign-in without MFA",
    "root_activity": "Root account used",
    "impossible_travel": "Activity from places too far apart for the time between them",
    "new_country_sign_in": "First sign-in from a new country",
    "privilege_change_spree": "Many access-privilege changes in a short window",
    "trail_tampering": "CloudTrail logging stopped, deleted or narrowed",
    "security_group_open_to_world": "Security group opened to the whole internet",
    "admin_policy_attached": "Administrator policy attached",
    "access_key_for_other_user": "Access key created for another user",
    "detector_disabled": "GuardDuty, Config or another detector turned off",
}

# --- Data layer: which events carry rows the use-case tables explode --------

# Security group calls that add or remove rules (one table row per rule and peer).
SECURITY_GROUP_RULE_EVENTS = (
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
)
# Which part of the network each network event changes, for the network changes table.
NETWORK_RESOURCE_KINDS = (
    ("security group", SECURITY_GROUP_EVENTS),
    ("network ACL", NETWORK_ACL_EVENTS),
    ("route table", ROUTE_TABLE_EVENTS),
    ("VPC", VPC_EVENTS),
)
# Which kind of IAM entity each IAM event changes, for the IAM changes table.
IAM_ENTITY_KINDS = (
    ("user", IAM_USER_EVENTS),
    ("group", IAM_GROUP_EVENTS),
    ("role", IAM_ROLE_EVENTS),
    ("policy", IAM_POLICY_EVENTS),
    ("credential", IAM_CREDENTIAL_EVENTS),
)

# --- Security detections: which calls each high-risk finding looks at, and how bad each finding is --------

# Calls that attach a managed policy (flagged when it is one of ADMIN_POLICY_ARNS).
POLICY_ATTACH_EVENTS = ("AttachUserPolicy", "AttachGroupPolicy", "AttachRolePolicy")
# Calls that carry a policy document (flagged when it allows every action on every resource).
POLICY_DOCUMENT_EVENTS = ("PutUserPolicy", "PutGroupPolicy", "PutRolePolicy", "CreatePolicyVersion")
# Console sign-ins by these identity types should show MFA; federated and SSO users prove it at their identity provider.
MFA_SIGN_IN_USER_TYPES = ("IAMUser", "Root")
# userIdentity types that are AWS acting for itself: never a person at a place.
AWS_SERVICE_USER_TYPES = ("AWSService",)
# Trail tampering that stops logging outright (critical); the other TRAIL_TAMPERING_EVENTS narrow it (high).
TRAIL_STOPPING_EVENTS = ("StopLogging", "DeleteTrail", "DeleteEventDataStore")

FINDING_SEVERITY: dict[str, str] = {
    "unauthorized_burst": "medium",
    "console_login_failure_burst": "medium",
    "console_login_without_mfa": "medium",
    "root_activity": "high",
    "impossible_travel": "high",
    "new_country_sign_in": "medium",
    "privilege_change_spree": "medium",
    "trail_tampering": "high",
    "security_group_open_to_world": "high",
    "admin_policy_attached": "high",
    "access_key_for_other_user": "high",
    "detector_disabled": "high",
}
