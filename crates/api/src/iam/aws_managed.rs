//! AWS-managed policies: the few that matter for a Lattice workflow, built into the binary rather
//! than stored. Their ARNs are `arn:<partition>:iam::aws:policy/<Name>`; they can be read
//! (GetPolicy, GetPolicyVersion, ListPolicies with `Scope=AWS`) and attached to users, groups and
//! roles, never deleted or versioned. Documents are AWS's own as published in the AWS Managed
//! Policy Reference (`VPCLatticeServicesInvokeAccess` v1 allows `vpc-lattice-svcs:Invoke` only;
//! `vpc-lattice-svcs:Connect` is for resource configurations, which it does not cover), except
//! `ReadOnlyAccess`, which AWS writes for every service and Trellis
//! reduces to the services it hosts (docs/decisions.md).

/// One built-in AWS-managed policy.
#[derive(Debug)]
pub struct AwsManaged {
    pub name: &'static str,
    pub description: &'static str,
    /// The default version's ID (AWS's current one).
    pub version_id: &'static str,
    pub document: &'static str,
    /// AWS's creation and last-edit dates (unix milliseconds).
    pub create_date_ms: i64,
    pub update_date_ms: i64,
}

/// Every built-in AWS-managed policy, by name.
pub const POLICIES: &[AwsManaged] = &[
    AwsManaged {
        name: "AdministratorAccess",
        description: "Provides full access to AWS services and resources.",
        version_id: "v1",
        document: r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": "*",
      "Resource": "*"
    }
  ]
}"#,
        // 2015-02-06 18:39:46 UTC
        create_date_ms: 1_423_247_986_000,
        update_date_ms: 1_423_247_986_000,
    },
    AwsManaged {
        name: "ReadOnlyAccess",
        description: "Provides read-only access to AWS services and resources.",
        version_id: "v1",
        document: r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "ReadOnlyActions",
      "Effect": "Allow",
      "Action": [
        "vpc-lattice:Get*",
        "vpc-lattice:List*",
        "lambda:Get*",
        "lambda:List*",
        "iam:Get*",
        "iam:List*",
        "tag:Get*",
        "sts:GetCallerIdentity"
      ],
      "Resource": "*"
    }
  ]
}"#,
        create_date_ms: 1_423_247_986_000,
        update_date_ms: 1_423_247_986_000,
    },
    AwsManaged {
        name: "VPCLatticeFullAccess",
        description: "Provides full access to Amazon VPC Lattice and access to dependency services.",
        version_id: "v2",
        document: r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "vpc-lattice:*",
        "acm:DescribeCertificate",
        "acm:ListCertificates",
        "cloudwatch:GetMetricData",
        "cloudwatch:GetMetricStatistics",
        "cloudwatch:ListMetrics",
        "ec2:DescribeInstances",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcAttribute",
        "ec2:DescribeVpcs",
        "elasticloadbalancing:DescribeLoadBalancers",
        "firehose:DescribeDeliveryStream",
        "firehose:ListDeliveryStreams",
        "logs:DescribeLogGroups",
        "s3:ListAllMyBuckets",
        "lambda:ListAliases",
        "lambda:ListFunctions",
        "lambda:ListVersionsByFunction",
        "rds:DescribeDBInstances",
        "rds:DescribeDBClusters"
      ],
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": "iam:CreateServiceLinkedRole",
      "Resource": "arn:aws:iam::*:role/aws-service-role/vpc-lattice.amazonaws.com/AWSServiceRoleForVpcLattice",
      "Condition": {
        "StringLike": {
          "iam:AWSServiceName": "vpc-lattice.amazonaws.com"
        }
      }
    },
    {
      "Effect": "Allow",
      "Action": "iam:CreateServiceLinkedRole",
      "Resource": "arn:aws:iam::*:role/aws-service-role/delivery.logs.amazonaws.com/AWSServiceRoleForLogDelivery*",
      "Condition": {
        "StringLike": {
          "iam:AWSServiceName": "delivery.logs.amazonaws.com"
        }
      }
    }
  ]
}"#,
        // 2023-03-30 02:49 UTC; edited 2024-12-01 14:21 UTC.
        create_date_ms: 1_680_144_540_000,
        update_date_ms: 1_733_062_860_000,
    },
    AwsManaged {
        name: "VPCLatticeReadOnlyAccess",
        description: "Provides read-only access to Amazon VPC Lattice via the AWS Management Console, and limited access to dependency services.",
        version_id: "v2",
        document: r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "vpc-lattice:Get*",
        "vpc-lattice:List*",
        "acm:DescribeCertificate",
        "acm:ListCertificates",
        "cloudwatch:GetMetricData",
        "ec2:DescribeInstances",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcAttribute",
        "ec2:DescribeVpcs",
        "elasticloadbalancing:DescribeLoadBalancers",
        "firehose:DescribeDeliveryStream",
        "firehose:ListDeliveryStreams",
        "lambda:ListAliases",
        "lambda:ListFunctions",
        "lambda:ListVersionsByFunction",
        "logs:DescribeLogGroups",
        "logs:GetLogDelivery",
        "logs:ListLogDeliveries",
        "s3:ListAllMyBuckets",
        "rds:DescribeDBInstances",
        "rds:DescribeDBClusters"
      ],
      "Resource": "*"
    }
  ]
}"#,
        // 2023-03-30 02:47 UTC; edited 2024-12-01 14:21 UTC.
        create_date_ms: 1_680_144_420_000,
        update_date_ms: 1_733_062_860_000,
    },
    AwsManaged {
        name: "VPCLatticeServicesInvokeAccess",
        description: "Provides access to invoke Amazon VPC Lattice services.",
        version_id: "v1",
        document: r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "vpc-lattice-svcs:Invoke"
      ],
      "Resource": "*"
    }
  ]
}"#,
        // 2023-03-30 02:45 UTC.
        create_date_ms: 1_680_144_300_000,
        update_date_ms: 1_680_144_300_000,
    },
];

/// The AWS-managed policy an ARN names (`arn:<partition>:iam::aws:policy/<Name>`), if Trellis
/// has it.
pub fn by_arn(arn: &str) -> Option<&'static AwsManaged> {
    let rest = arn.strip_prefix("arn:")?;
    let (_partition, rest) = rest.split_once(':')?;
    let name = rest.strip_prefix("iam::aws:policy/")?;
    POLICIES.iter().find(|p| p.name == name)
}

/// Whether an ARN is in AWS's own policy namespace (`arn:<partition>:iam::aws:policy/…`), known
/// to Trellis or not.
pub fn is_aws_arn(arn: &str) -> bool {
    arn.strip_prefix("arn:")
        .and_then(|r| r.split_once(':'))
        .is_some_and(|(_, r)| r.starts_with("iam::aws:policy/"))
}

/// Its ARN in `partition`.
pub fn arn(partition: &str, p: &AwsManaged) -> String {
    format!("arn:{partition}:iam::aws:policy/{}", p.name)
}

/// A stable policy ID (`ANPA` + 17 characters of IAM's alphabet) derived from the name, so that
/// every node and every restart answers the same one.
pub fn policy_id(p: &AwsManaged) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    // FNV-1a, stretched: enough to tell five names apart, and no dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::from("ANPA");
    for i in 0..17u8 {
        for b in p.name.bytes().chain([i]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push(ALPHABET[(h >> 59) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_policy::PolicyKind;

    #[test]
    fn every_document_is_a_valid_identity_policy() {
        for p in POLICIES {
            assert!(
                trellis_policy::parse(p.document, PolicyKind::Identity).is_ok(),
                "{}",
                p.name
            );
            assert!(p.document.chars().count() <= trellis_policy::IDENTITY_POLICY_MAX_CHARS);
        }
    }

    #[test]
    fn arns_and_ids() {
        let admin = by_arn("arn:aws:iam::aws:policy/AdministratorAccess").unwrap();
        assert_eq!(admin.name, "AdministratorAccess");
        assert_eq!(
            arn("aws", admin),
            "arn:aws:iam::aws:policy/AdministratorAccess"
        );
        assert!(by_arn("arn:aws:iam::111122223333:policy/AdministratorAccess").is_none());
        assert!(by_arn("arn:aws:iam::aws:policy/Nope").is_none());
        assert!(is_aws_arn("arn:aws:iam::aws:policy/Nope"));
        assert!(!is_aws_arn("arn:aws:iam::111122223333:policy/x"));
        let ids: Vec<String> = POLICIES.iter().map(policy_id).collect();
        for id in &ids {
            assert!(id.starts_with("ANPA") && id.len() == 21, "{id}");
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        assert_eq!(policy_id(admin), ids[0]);
    }
}
