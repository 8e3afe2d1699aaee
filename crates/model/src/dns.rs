//! Generated DNS names of services: the `dnsEntry` (`domainName` + `hostedZoneId`) that
//! CreateService, GetService and the service-network–service associations return, and that the
//! embedded DNS server and the data plane answer and route on.
//!
//! Lattice names every service (reference §2.6)
//!
//! ```text
//! <service-name>-<service-id without "svc-">.<partition id>.vpc-lattice-svcs.<region>.on.aws
//! ```
//!
//! e.g. `test2-0cfe1f49ff3266204.7d67968.vpc-lattice-svcs.ap-southeast-2.on.aws`. The 7-hex
//! "partition id" is opaque and stable in AWS; Trellis derives it from the account ID so that
//! every node of a deployment (and every restart) computes the same names without storing
//! anything, while two Trellis accounts never share a zone. The hosted zone ID is derived the
//! same way from region + account.
//!
//! All functions here are pure and deterministic: the API computes the entry once at
//! CreateService and stores it in the service document, and the DNS server / data plane may call
//! [`service_domain_name`], [`zone_apex`] or [`service_id_from_domain_name`] on their own and get
//! the same answer.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `DnsEntry` wire structure: a service's generated name and the zone that holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsEntry {
    pub domain_name: String,
    pub hosted_zone_id: String,
}

/// The fixed label between the partition id and the region.
pub const SERVICES_LABEL: &str = "vpc-lattice-svcs";

/// The 7 lowercase hex characters that stand for the "partition id" label of generated names:
/// the first 7 hex digits of SHA-256(account id). Stable for an account, different across
/// accounts (with overwhelming probability).
pub fn partition_label(account_id: &str) -> String {
    let digest = hex::encode(Sha256::digest(account_id.as_bytes()));
    digest[..7].to_string()
}

/// The zone every generated service name of this account and region lives under:
/// `<partition id>.vpc-lattice-svcs.<region>.on.aws` (no trailing dot). The DNS server is
/// authoritative for it.
pub fn zone_apex(region: &str, account_id: &str) -> String {
    format!(
        "{}.{SERVICES_LABEL}.{region}.on.aws",
        partition_label(account_id)
    )
}

/// The generated FQDN of a service (no trailing dot), e.g.
/// `billing-0123456789abcdef0.1a2b3c4.vpc-lattice-svcs.us-west-2.on.aws`.
///
/// `service_id` is the full `svc-…` ID; its prefix is dropped. The first label is at most
/// 40 + 1 + 17 = 58 characters, within DNS's 63.
pub fn service_domain_name(
    service_name: &str,
    service_id: &str,
    region: &str,
    account_id: &str,
) -> String {
    let suffix = service_id.strip_prefix("svc-").unwrap_or(service_id);
    format!("{service_name}-{suffix}.{}", zone_apex(region, account_id))
}

/// The Route 53-style hosted zone ID reported in `dnsEntry.hostedZoneId`: `Z` followed by 20
/// uppercase alphanumerics (AWS's look: `Z09127221KTH2CFUOHIZH`), derived from SHA-256 of
/// `"<region>/<account id>"` so that it is stable per region and account.
pub fn hosted_zone_id(region: &str, account_id: &str) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let digest = Sha256::digest(format!("{region}/{account_id}").as_bytes());
    let mut id = String::with_capacity(21);
    id.push('Z');
    // 32 digest bytes, 20 needed; the modulo bias is irrelevant for an identifier.
    id.extend(
        digest
            .iter()
            .take(20)
            .map(|b| ALPHABET[usize::from(*b) % 36] as char),
    );
    id
}

/// The complete `dnsEntry` of a service.
pub fn service_dns_entry(
    service_name: &str,
    service_id: &str,
    region: &str,
    account_id: &str,
) -> DnsEntry {
    DnsEntry {
        domain_name: service_domain_name(service_name, service_id, region, account_id),
        hosted_zone_id: hosted_zone_id(region, account_id),
    }
}

/// The service ID a generated name stands for, if `fqdn` is a generated name of this region and
/// account (case-insensitive, a trailing dot allowed). Used to route by Host/SNI or answer DNS
/// without a table lookup by name; callers must still check that the service exists.
pub fn service_id_from_domain_name(fqdn: &str, region: &str, account_id: &str) -> Option<String> {
    let fqdn = fqdn.strip_suffix('.').unwrap_or(fqdn).to_ascii_lowercase();
    let first = fqdn.strip_suffix(&format!(".{}", zone_apex(region, account_id)))?;
    if first.contains('.') {
        return None;
    }
    // `<name>-<17 id chars>`: the name is at least 3 characters, then the dash.
    let (name, suffix) = first.split_at_checked(first.len().checked_sub(17)?)?;
    let name = name.strip_suffix('-')?;
    let well_formed = name.len() >= 3
        && suffix
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    well_formed.then(|| format!("svc-{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "us-west-2";

    #[test]
    fn partition_label_is_stable_seven_hex() {
        let a = partition_label(ACCOUNT);
        assert_eq!(a.len(), 7);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{a}"
        );
        assert_eq!(a, partition_label(ACCOUNT));
        assert_ne!(a, partition_label("444455556666"));
        // Pinned: names must not change between releases, clients and DNS records depend on them.
        assert_eq!(a, hex::encode(Sha256::digest(b"111122223333"))[..7]);
    }

    #[test]
    fn domain_name_has_the_lattice_shape() {
        let name = service_domain_name("billing", "svc-0123456789abcdef0", REGION, ACCOUNT);
        let label = partition_label(ACCOUNT);
        assert_eq!(
            name,
            format!("billing-0123456789abcdef0.{label}.vpc-lattice-svcs.us-west-2.on.aws")
        );
        let first = name.split('.').next().unwrap();
        assert!(first.len() <= 63);
        let longest =
            service_domain_name(&"a".repeat(40), "svc-0123456789abcdef0", REGION, ACCOUNT);
        assert_eq!(longest.split('.').next().unwrap().len(), 58);
    }

    #[test]
    fn hosted_zone_id_is_z_plus_twenty_upper_alnum() {
        let z = hosted_zone_id(REGION, ACCOUNT);
        assert_eq!(z.len(), 21);
        assert!(z.starts_with('Z'));
        assert!(
            z[1..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
            "{z}"
        );
        assert_eq!(z, hosted_zone_id(REGION, ACCOUNT));
        assert_ne!(z, hosted_zone_id("us-east-1", ACCOUNT));
        assert_ne!(z, hosted_zone_id(REGION, "444455556666"));
    }

    #[test]
    fn dns_entry_serializes_with_wire_member_names() {
        let e = service_dns_entry("abc", "svc-0123456789abcdef0", REGION, ACCOUNT);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["domainName"], e.domain_name.as_str());
        assert_eq!(v["hostedZoneId"], e.hosted_zone_id.as_str());
    }

    #[test]
    fn service_id_from_domain_name_table() {
        let apex = zone_apex(REGION, ACCOUNT);
        let id = Some("svc-0123456789abcdef0".to_string());
        let cases: Vec<(String, Option<String>)> = vec![
            (
                service_domain_name("billing", "svc-0123456789abcdef0", REGION, ACCOUNT),
                id.clone(),
            ),
            (format!("BILLING-0123456789ABCDEF0.{apex}."), id.clone()),
            (
                service_domain_name("a-b-c", "svc-0123456789abcdef0", REGION, ACCOUNT),
                id.clone(),
            ),
            // Wrong account / region: not ours.
            (
                service_domain_name("billing", "svc-0123456789abcdef0", REGION, "444455556666"),
                None,
            ),
            (
                service_domain_name("billing", "svc-0123456789abcdef0", "eu-west-1", ACCOUNT),
                None,
            ),
            // Malformed first labels.
            (format!("billing0123456789abcdef0.{apex}"), None),
            (format!("ab-0123456789abcdef0.{apex}"), None),
            (format!("billing-0123456789abcdef.{apex}"), None),
            (format!("x.billing-0123456789abcdef0.{apex}"), None),
            (format!("billing-0123456789abcd_f0.{apex}"), None),
            (apex.clone(), None),
            ("example.com".to_string(), None),
        ];
        for (fqdn, want) in cases {
            assert_eq!(
                service_id_from_domain_name(&fqdn, REGION, ACCOUNT),
                want,
                "{fqdn}"
            );
        }
    }
}
