"""The SigmaHQ rules `rules fetch` installs, pinned: one commit, and the SHA-256 of every file taken from it.

GitHub builds commit archives on the fly (their bytes, so their hash, may change); the files inside do not, so each
is checked against this manifest. To move the pin, run `python -m trailstream.analytics.sigma.repin CHECKOUT > new.py`
on a SigmaHQ/sigma checkout at the new commit and save new.py over this file.
"""

import hashlib
from pathlib import Path

COMMIT = "8eaafff1f2845a696050e05e72ba1140ee190698"
ARCHIVE_URL = f"https://github.com/SigmaHQ/sigma/archive/{COMMIT}.zip"
RULES_FOLDER = "rules/cloud/aws/cloudtrail"
LICENSE_FILES = ("LICENSE",)
# path in the checkout -> SHA-256 of the file at COMMIT
MANIFEST = {
    "LICENSE": "4213ed7e21d9435b0aa0aa7d11016e6ab3e4664fa71738ff507306fadce79597",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_bedrock_guardrail_deleted.yml": "afa8a9032e3f3b573d4533a6fbd56e24c0b253b33284332f026b020c3c5921db",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_bedrock_guardrail_updated.yml": "401eeb32f1178311e6a27a8d1868cc7d15f06757ebd39b25649474fb6e0f587c",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_bucket_deleted.yml": "9b34851756abd9cad6f4815b094f46b928900a4a5428b10f29e6ba973c957708",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_console_login_failed_authentication.yml": "ca814c8cb7de0f11d39ad93a87bf1b58d70983111af806df58fc3bf1bb1689c1",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_console_login_success_without_mfa.yml": "9246d0fb4e7db1523cb747affd80b9f108a95eccee90d1ae022e58cbe7255fb2",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_disable_logging.yml": "3eb82f86bbab060a5d8c971e30580894a3f9ef016438dd42f7aca68c2ee2b6b5",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_guardduty_detector_deleted_or_updated.yml": "7a0a19ba3a9a9cd537f3fbc24e0510c3681a1b09108152ee3bf62d08b23e0668",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_imds_malicious_usage.yml": "b070399db57d212727d7f7873c642a0c1da0930c2b45a5fe8945c3e2474caf37",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_new_acl_entries.yml": "a3c463725ba9d81e216f6612a3dfcd8ea885f406a0c9904dad8540a5ffe87a69",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_new_route_added.yml": "ead44eb0d604bf80db74a28468da5241a803ab248299016c79a70544ec81a41c",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_pua_trufflehog.yml": "a31d1b5e4a0d72541713198315e83047a4a9cbd5a74fcedf363ec1516badb47b",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_region_enabled.yml": "bcbb8f7b718c624e9b72f29148b90c7df1d3aae80db746384c0542e9d6d79344",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_security_group_change_ingress_egress.yml": "c23b903deb40fefbb02eb93410d5b6ee6c656beb09d11d14ef500692b60f0b40",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_security_group_change_loadbalancer.yml": "5e26345487b7466b63cb10d2f976461b6b6c6882ae2d791da54fe01a4fb2bc41",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_security_group_change_rds.yml": "7d556a2914fb4c6ecc907a45b029d51084b05c26dfe00b0b610b99c92146fa72",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_ssm_malicious_usage.yml": "3d394a4a27a2af7c93034177c376f0358e13b29999074dda031334b7c92b2cc9",
    "rules/cloud/aws/cloudtrail/aws_cloudtrail_vpc_flow_logs_deleted.yml": "bfadf75257b6ab18494d9169a35751cd4052809faba5bae9b983c7a6bae838e2",
    "rules/cloud/aws/cloudtrail/aws_config_disable_recording.yml": "d53eb7e1c2b87a31bd7ca7558f3eda1d15ceb4646451e8e0405d78618480aea6",
    "rules/cloud/aws/cloudtrail/aws_console_getsignintoken.yml": "c924ecf34bed246d1729a72104656c75242c8497251717b83b47f8e1dc7ee1cb",
    "rules/cloud/aws/cloudtrail/aws_delete_identity.yml": "5a85ec99a1c6feb1457a5999557a91624576a70b73253830a0b88230f05191d0",
    "rules/cloud/aws/cloudtrail/aws_delete_saml_provider.yml": "6d1fa18f7702322b8b2beb6faf6c30a96f3542c9a5fbe4ee515604248a907e5b",
    "rules/cloud/aws/cloudtrail/aws_disable_bucket_versioning.yml": "d8878bcfa1527168cbbdb87ac1485f3cf3289aaac9aa163eb372305bcb672142",
    "rules/cloud/aws/cloudtrail/aws_ec2_disable_encryption.yml": "32d77e9feddfa6e6eb2b217d64ce4ec8f0c5a4a790a49579c5af2d57b61f3836",
    "rules/cloud/aws/cloudtrail/aws_ec2_import_key_pair_activity.yml": "72fba996a7e2313f7bbbff13e1ac3c0c96ff6b05e497a3426a419858325092e1",
    "rules/cloud/aws/cloudtrail/aws_ec2_startup_script_change.yml": "8b58ce7431b1b3964cf0239c95164d92c9ce51c941101f70d901f7ff3b71b727",
    "rules/cloud/aws/cloudtrail/aws_ec2_vm_export_failure.yml": "85fb35c3c3e279c3c4a00a0420097d9093cdcb563c4f2bfdfb3f1deedd1377f5",
    "rules/cloud/aws/cloudtrail/aws_ecs_task_definition_cred_endpoint_query.yml": "4af2f599145bc049284a6f45d738b737e5e55b2f73b0baa539c25f8db1dfbd14",
    "rules/cloud/aws/cloudtrail/aws_efs_fileshare_modified_or_deleted.yml": "e699bbac4c7cd3365b708643f9b571dccc15fd9c100bd333ed40a0dd4720bb95",
    "rules/cloud/aws/cloudtrail/aws_efs_fileshare_mount_modified_or_deleted.yml": "ee799695295c2361326d555336a4f95121997e51f3d6714da3ce5671bf8036be",
    "rules/cloud/aws/cloudtrail/aws_eks_cluster_created_or_deleted.yml": "14feca5a239fb6ccf083ae7a8bf2ad68847565f8ebc192b3d037c5caca079a2f",
    "rules/cloud/aws/cloudtrail/aws_elasticache_security_group_created.yml": "027461e043897cf30e90a6511e8f815ad52931e5fb472743a03d6d5b064b910a",
    "rules/cloud/aws/cloudtrail/aws_elasticache_security_group_modified_or_deleted.yml": "6a4cb1cd21d1fc7d311f727814aed79f90d15875de66f3924d35f9fdc5bc86c7",
    "rules/cloud/aws/cloudtrail/aws_enum_buckets.yml": "9aa68b0fe446f30c162e50a3e9a9f3985a63a4ec8a1a5c2f5d1586c26f72bfbd",
    "rules/cloud/aws/cloudtrail/aws_guardduty_disruption.yml": "b82f5f5ef3080814b9bbf019a07f7ddf0313afd1e08b8eca3e5331b6bbf3a01c",
    "rules/cloud/aws/cloudtrail/aws_iam_backdoor_users_keys.yml": "3dd4fe36c892c8fefef93c24f29e5747f2b046ef129c33c92a283d1dcba188d5",
    "rules/cloud/aws/cloudtrail/aws_iam_s3browser_loginprofile_creation.yml": "981a9406ac25d4b00b2dfd446c87a14b3f22cc03f54f03c7b6229a3ac507c371",
    "rules/cloud/aws/cloudtrail/aws_iam_s3browser_templated_s3_bucket_policy_creation.yml": "f2a68159a3037c9511c3c74d3d027fc367dc9c4662df6c6f03723554aa92d245",
    "rules/cloud/aws/cloudtrail/aws_iam_s3browser_user_or_accesskey_creation.yml": "c566f779298d219eb9733ec7db1e554ff269f748f71b3fffd4eb9ff09adf53fe",
    "rules/cloud/aws/cloudtrail/aws_kms_import_key_material.yml": "1f189644e9cd64ebe2b19bfb82c2f6ab523921adce89df64cd818884b6218792",
    "rules/cloud/aws/cloudtrail/aws_lambda_function_url.yml": "0650f816c27b3bc3b3d489689084c682b2b81878686902ddc8c09a0cf0c652e2",
    "rules/cloud/aws/cloudtrail/aws_new_lambda_layer_attached.yml": "47301c0a069254a4eb44f2919a2e5be765f25eaf79307b1ba24cec01ba6d6f3e",
    "rules/cloud/aws/cloudtrail/aws_passed_role_to_glue_development_endpoint.yml": "e1cf2282a0efe06cffb1d40368064c259742ae430af8279035e5e23867dad07d",
    "rules/cloud/aws/cloudtrail/aws_rds_change_master_password.yml": "0656eb07363653f62eaa948f420ddf7c0ec9d6922cda37c5e2cceda832bdb102",
    "rules/cloud/aws/cloudtrail/aws_rds_dbcluster_actions.yml": "7be9df2d2a4ef4b5f1742fdf0432f31f20956e9c4bfbc7b14f53497fd612e359",
    "rules/cloud/aws/cloudtrail/aws_rds_public_db_restore.yml": "b15f0a86150e455237cd494602cd4305a500afbf1ebd61a4164129d665cafcbe",
    "rules/cloud/aws/cloudtrail/aws_root_account_usage.yml": "5e3eb0efd32926f1eb8b9962e10fa3c7a84851bed687f21df80ac9cb0c6591b5",
    "rules/cloud/aws/cloudtrail/aws_route_53_domain_transferred_lock_disabled.yml": "01ef84303522ac1e74f2216723aff340337ad0eb195cf74ed55c22a48af065cb",
    "rules/cloud/aws/cloudtrail/aws_route_53_domain_transferred_to_another_account.yml": "85653edbea077c0e9679cb72bd51b529c18781aee98253be6dbac1f8776cd50e",
    "rules/cloud/aws/cloudtrail/aws_s3_data_management_tampering.yml": "880d32e8ed7a24bb7af50d6b3fd6a6a0440dc92066a1380dac5c3337f8450389",
    "rules/cloud/aws/cloudtrail/aws_securityhub_finding_evasion.yml": "865044229606ad4a1bc676f90a7c5edb0de04a5b9f518b69888648aee3480e91",
    "rules/cloud/aws/cloudtrail/aws_snapshot_backup_exfiltration.yml": "f51c4544237d7eba85fc71f3e3bfbda7683331852c83ec502e14a180da563d96",
    "rules/cloud/aws/cloudtrail/aws_sso_idp_change.yml": "7ea2c37b143dacc7c240f87d69212a325155090b3535baa33ba38e8a7f58f145",
    "rules/cloud/aws/cloudtrail/aws_sts_assumerole_misuse.yml": "6d5a489785cb83e1d7459733493874d0b18ecee6e76a155f932b0723504a5d78",
    "rules/cloud/aws/cloudtrail/aws_sts_getcalleridentity_trufflehog.yml": "0ac6ba13862ac8c17a345911cce8634ad643ee84d5bffdd40532c5ff7190fe97",
    "rules/cloud/aws/cloudtrail/aws_sts_getsessiontoken_misuse.yml": "6b08c17de0503620379210c8371dd4a8bb7a04337be4f15d4b808182c121e435",
    "rules/cloud/aws/cloudtrail/aws_susp_saml_activity.yml": "c90617886006d86216ea86cce6fc275be6504f61e1142770a2ee9c5ffa5bad8e",
    "rules/cloud/aws/cloudtrail/aws_update_login_profile.yml": "d29c571268666e01c24c0f3492b7fc04ccb66b165294c79c3b9afac57db80af6",
}


def manifest_of(checkout: Path) -> dict[str, str]:
    """The manifest of a checkout (or a copy of its files): its license files and every file under RULES_FOLDER."""
    files = [checkout / name for name in LICENSE_FILES]
    files += sorted(path for path in (checkout / RULES_FOLDER).rglob("*") if path.is_file())
    return {path.relative_to(checkout).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}
