//! The immutable answer table the DNS server serves: zone apexes with their SOA, service and
//! custom-domain names with their address records, and the lookup that classifies a query.
//!
//! A [`Zone`] is built once per configuration change, off the query path, and then only read.
//! Everything a response needs (owner names, TTLs, SOA records) is materialised at build time so
//! that answering a query is a hash lookup plus borrowing pre-built records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

use hickory_server::proto::rr::rdata::{A, AAAA, SOA};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

/// TTL, in seconds, of every record the server hands out, the SOA included.
///
/// The addresses behind a name change when an operator edits configuration (a service is
/// created or deleted, the ingress address moves), so caches must not hold them long. One minute
/// bounds how stale a downstream resolver can be while keeping query volume from busy clients
/// modest. The SOA `minimum` field uses the same value, so a negative answer cached before a
/// service was created also expires within a minute (RFC 2308: negative TTL =
/// min(SOA TTL, SOA minimum)).
pub const TTL: u32 = 60;

// SOA timers for secondaries. Trellis has no secondaries and serves no zone transfers, so these
// only need to be plausible values for tools that display or sanity-check them (RFC 1912 §2.2).
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 86_400;

/// What the server answers, rebuilt whenever configuration changes; immutable once built.
///
/// Two kinds of authority live side by side:
///
/// * **Zones** (e.g. `vpc-lattice-svcs.us-west-2.on.aws`): Trellis owns the whole subtree.
///   Names under a zone that are not records get NXDOMAIN with the zone's SOA; names that exist
///   only as ancestors of records (empty non-terminals such as the partition label
///   `7d67968.vpc-lattice-svcs.us-west-2.on.aws`) get NOERROR with no data, because an NXDOMAIN
///   there would tell resolvers that do QNAME minimisation (RFC 9156) or NXDOMAIN cuts
///   (RFC 8020) that every service name below it does not exist either.
/// * **Custom domain names** (records outside every zone): each is authoritative for itself
///   only, with its own SOA. Its subdomains and its parent are not ours and get REFUSED.
///
/// A record whose name falls inside a zone belongs to that zone (the innermost one when zones
/// nest), whether it is a generated service name or a custom domain name.
#[derive(Clone)]
pub struct Zone {
    /// One SOA per zone and per custom domain name.
    authorities: Vec<Authority>,
    /// Every name that exists: zone apexes, record names and empty non-terminals. `Name`'s
    /// `Eq`/`Hash` ignore ASCII case, and every stored name is fully qualified.
    nodes: HashMap<Name, Node>,
    /// The apex of every configured zone (not custom domain names), for finding the zone that
    /// answers NXDOMAIN for a name that does not exist.
    apexes: HashMap<Name, usize>,
    /// Per-client answers (client networks): see [`Zone::with_client_views`].
    views: std::sync::Arc<ClientViews>,
}

/// The zones some clients get instead of the default one, by the client's address.
#[derive(Clone, Default)]
struct ClientViews {
    /// (block, index into `zones`), longest prefix first.
    by_net: Vec<(ipnet::IpNet, usize)>,
    zones: Vec<Zone>,
}

#[derive(Clone, Debug)]
struct Authority {
    /// The SOA record, owned by the apex name.
    soa: Record,
}

#[derive(Clone, Debug)]
struct Node {
    /// Index into [`Zone::authorities`]: whose SOA goes into negative answers for this name.
    authority: usize,
    a: Vec<Record>,
    aaaa: Vec<Record>,
}

impl Node {
    fn empty(authority: usize) -> Node {
        Node {
            authority,
            a: Vec::new(),
            aaaa: Vec::new(),
        }
    }
}

/// How a query is answered, borrowing the records from the [`Zone`].
#[derive(Debug, PartialEq)]
pub(crate) enum Lookup<'a> {
    /// The name exists: NOERROR. An empty `answers` is NODATA, sent with `soa` in the authority
    /// section so resolvers can cache the negative answer (RFC 2308 §2.2).
    Found {
        answers: &'a [Record],
        soa: &'a Record,
    },
    /// The name is inside a zone but does not exist: NXDOMAIN with the zone's SOA.
    NxDomain { soa: &'a Record },
    /// The name is not ours at all.
    Refused,
}

impl Zone {
    /// Builds the answer table.
    ///
    /// `zones`: the domains Trellis is authoritative for (e.g.
    /// `"vpc-lattice-svcs.us-west-2.on.aws"`); names under them that aren't records get NXDOMAIN.
    ///
    /// `records`: fully-qualified names (generated service names and custom domain names) →
    /// addresses (the ingress address(es); IPv4 → A, IPv6 → AAAA). A name listed more than once
    /// gets the union of its addresses; an empty list makes the name exist with no addresses.
    /// Custom domain names are answered exactly (each is authoritative for itself only).
    ///
    /// Names are case-insensitive and may carry a trailing dot or not. Entries that are not valid
    /// DNS names, and the root name, are skipped with a warning: the configuration they come from
    /// has already been validated, and one bad name must not take DNS down for every service.
    pub fn new(
        zones: impl IntoIterator<Item = String>,
        records: impl IntoIterator<Item = (String, Vec<IpAddr>)>,
    ) -> Zone {
        // Sorted, de-duplicated inputs make the build (and so every serial) independent of the
        // order the caller happens to produce names in.
        let zone_names: BTreeSet<Name> = zones
            .into_iter()
            .filter_map(|zone| parse_name(&zone, "zone"))
            .collect();
        let mut by_name: BTreeMap<Name, BTreeSet<IpAddr>> = BTreeMap::new();
        for (name, addresses) in records {
            if let Some(name) = parse_name(&name, "record") {
                by_name.entry(name).or_default().extend(addresses);
            }
        }

        let mut builders: Vec<AuthorityBuilder> = Vec::new();
        let mut nodes: HashMap<Name, Node> = HashMap::new();
        let mut apexes: HashMap<Name, usize> = HashMap::new();

        for apex in &zone_names {
            let index = builders.len();
            builders.push(AuthorityBuilder::new(apex.clone()));
            apexes.insert(apex.clone(), index);
            nodes.insert(apex.clone(), Node::empty(index));
        }
        // A zone nested inside another makes the names between the two apexes empty
        // non-terminals of the outer zone; without them the outer zone would deny that the inner
        // one exists.
        for apex in &zone_names {
            if let Some(outer) = enclosing_zone(&apexes, &apex.base_name()) {
                add_empty_non_terminals(&mut nodes, apex, &builders[outer].apex, outer);
            }
        }

        for (name, addresses) in &by_name {
            let authority = match enclosing_zone(&apexes, name) {
                Some(zone) => {
                    add_empty_non_terminals(&mut nodes, name, &builders[zone].apex, zone);
                    zone
                }
                None => {
                    builders.push(AuthorityBuilder::new(name.clone()));
                    builders.len() - 1
                }
            };
            builders[authority].digest.add_record(name, addresses);

            let node = nodes
                .entry(name.clone())
                .or_insert_with(|| Node::empty(authority));
            node.authority = authority;
            for address in addresses {
                let record = match *address {
                    IpAddr::V4(v4) => Record::from_rdata(name.clone(), TTL, RData::A(A(v4))),
                    IpAddr::V6(v6) => Record::from_rdata(name.clone(), TTL, RData::AAAA(AAAA(v6))),
                };
                match address {
                    IpAddr::V4(_) => node.a.push(record),
                    IpAddr::V6(_) => node.aaaa.push(record),
                }
            }
        }

        Zone {
            authorities: builders.into_iter().map(AuthorityBuilder::build).collect(),
            nodes,
            apexes,
            views: std::sync::Arc::default(),
        }
    }

    /// Classifies a query for `name` (fully qualified, any case) and `qtype`.
    ///
    /// Only A and AAAA carry data, plus SOA at an apex. Every other type, ANY included, is
    /// NODATA on an existing name: Trellis publishes addresses only, and RFC 8482 lets an
    /// authoritative server answer ANY with less than everything.
    pub(crate) fn lookup(&self, name: &Name, qtype: RecordType) -> Lookup<'_> {
        if let Some(node) = self.nodes.get(name) {
            let soa = &self.authorities[node.authority].soa;
            let answers: &[Record] = match qtype {
                RecordType::A => &node.a,
                RecordType::AAAA => &node.aaaa,
                RecordType::SOA if soa.name == *name => std::slice::from_ref(soa),
                _ => &[],
            };
            return Lookup::Found { answers, soa };
        }
        // The name does not exist; it is ours to deny only if a zone encloses it.
        match enclosing_zone(&self.apexes, name) {
            Some(zone) => Lookup::NxDomain {
                soa: &self.authorities[zone].soa,
            },
            None => Lookup::Refused,
        }
    }
}

impl Zone {
    /// This zone for clients in no view, and `views` — (the client address blocks, the zone
    /// they are answered from) — for the others (client networks: each VPC sees the names of
    /// its service network, with its own ingress address). A client in several views' blocks
    /// gets the one with the longest matching prefix; a tie between two views gets this zone.
    pub fn with_client_views(
        mut self,
        views: impl IntoIterator<Item = (Vec<ipnet::IpNet>, Zone)>,
    ) -> Zone {
        let mut out = ClientViews::default();
        for (nets, zone) in views {
            let index = out.zones.len();
            out.zones.push(zone);
            out.by_net.extend(nets.into_iter().map(|net| (net, index)));
        }
        out.by_net
            .sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        self.views = std::sync::Arc::new(out);
        self
    }

    /// The zone that answers a client at `address`.
    pub fn for_client(&self, address: IpAddr) -> &Zone {
        let address = address.to_canonical();
        let mut matches = self
            .views
            .by_net
            .iter()
            .filter(|(net, _)| net.contains(&address));
        let Some((best, index)) = matches.next() else {
            return self;
        };
        if matches.any(|(net, other)| net.prefix_len() == best.prefix_len() && other != index) {
            return self;
        }
        &self.views.zones[*index]
    }
}

impl Default for Zone {
    /// A zone with no authority at all: every query is REFUSED.
    fn default() -> Zone {
        Zone::new([], [])
    }
}

impl fmt::Debug for Zone {
    // The full record set can be large; a summary is what logs and test failures need.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let soas: Vec<String> = self
            .authorities
            .iter()
            .map(|authority| match &authority.soa.data {
                RData::SOA(soa) => format!("{} serial {}", authority.soa.name, soa.serial),
                _ => authority.soa.name.to_string(),
            })
            .collect();
        f.debug_struct("Zone")
            .field("authorities", &soas)
            .field("names", &self.nodes.len())
            .finish()
    }
}

/// Parses a configured name into a lowercase, fully-qualified [`Name`], or warns and skips it.
fn parse_name(text: &str, what: &str) -> Option<Name> {
    // `from_str_relaxed` accepts IDNs (converted to punycode) and underscores, which custom
    // domain names may legitimately contain.
    let parsed = Name::from_str_relaxed(text).map(|name| {
        let mut name = name.to_lowercase();
        name.set_fqdn(true);
        name
    });
    match parsed {
        Ok(name) if !name.is_root() => Some(name),
        Ok(_) => {
            tracing::warn!(%what, "DNS: ignoring the root name; Trellis is never authoritative for it");
            None
        }
        Err(error) => {
            tracing::warn!(%what, name = %text, %error, "DNS: ignoring an invalid name");
            None
        }
    }
}

/// The innermost configured zone whose apex is `name` or an ancestor of it.
fn enclosing_zone(apexes: &HashMap<Name, usize>, name: &Name) -> Option<usize> {
    let labels = usize::from(name.num_labels());
    (1..=labels)
        .rev()
        .find_map(|count| apexes.get(&name.trim_to(count)).copied())
}

/// Makes every name strictly between `name` and `apex` exist (as an empty non-terminal of
/// `authority`) unless it already does.
fn add_empty_non_terminals(
    nodes: &mut HashMap<Name, Node>,
    name: &Name,
    apex: &Name,
    authority: usize,
) {
    let mut ancestor = name.base_name();
    while ancestor.num_labels() > apex.num_labels() {
        let next = ancestor.base_name();
        nodes
            .entry(ancestor)
            .or_insert_with(|| Node::empty(authority));
        ancestor = next;
    }
}

struct AuthorityBuilder {
    apex: Name,
    digest: Fnv1a,
}

impl AuthorityBuilder {
    fn new(apex: Name) -> AuthorityBuilder {
        let mut digest = Fnv1a::new();
        digest.write(apex.to_ascii().as_bytes());
        AuthorityBuilder { apex, digest }
    }

    fn build(self) -> Authority {
        // RFC 2142's conventional mailbox. An apex near the 255-octet limit has no room for one
        // more label; the apex itself is then the least surprising stand-in.
        let rname = self
            .apex
            .prepend_label("hostmaster")
            .unwrap_or_else(|_| self.apex.clone());
        // Trellis is the only name server for these zones and its own host name is not known
        // here, so the apex stands for the primary name server.
        let soa = SOA::new(
            self.apex.clone(),
            rname,
            self.digest.finish(),
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            TTL,
        );
        Authority {
            soa: Record::from_rdata(self.apex, TTL, RData::SOA(soa)),
        }
    }
}

/// FNV-1a (32 bit) over a zone's canonical content, used as its SOA serial.
///
/// A content hash rather than a counter or a timestamp: every Trellis node of a scaled-out
/// deployment builds the same zone from the same configuration and so publishes the same serial,
/// and a rebuild that changes nothing keeps the serial. The serial changes whenever the zone's
/// names or addresses do (up to a 2^-32 collision). It is not monotonic, which RFC 1982 serial
/// arithmetic would matter for only with secondaries pulling zone transfers — Trellis has none.
/// The algorithm is written out so the value cannot change with the Rust release, unlike
/// `std`'s `DefaultHasher`.
struct Fnv1a(u32);

impl Fnv1a {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;

    fn new() -> Fnv1a {
        Fnv1a(Self::OFFSET_BASIS)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u32::from(byte)).wrapping_mul(Self::PRIME);
        }
        // A separator keeps ("ab", "c") and ("a", "bc") apart.
        self.0 = (self.0 ^ 0xff).wrapping_mul(Self::PRIME);
    }

    fn add_record(&mut self, name: &Name, addresses: &BTreeSet<IpAddr>) {
        self.write(name.to_ascii().as_bytes());
        for address in addresses {
            match address {
                IpAddr::V4(v4) => self.write(&v4.octets()),
                IpAddr::V6(v6) => self.write(&v6.octets()),
            }
        }
    }

    fn finish(&self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "vpc-lattice-svcs.us-west-2.on.aws";
    const SERVICE: &str = "billing-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-west-2.on.aws";

    fn name(text: &str) -> Name {
        Name::from_str_relaxed(text)
            .unwrap()
            .append_domain(&Name::root())
            .unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn sample() -> Zone {
        Zone::new(
            [ZONE.to_string()],
            [
                (
                    SERVICE.to_string(),
                    vec![ip("169.254.171.1"), ip("fd00:ec2:80::a9fe:ab01")],
                ),
                (
                    "v4only-0aaaaaaaaaaaaaaaa.7d67968.vpc-lattice-svcs.us-west-2.on.aws"
                        .to_string(),
                    vec![ip("169.254.171.2")],
                ),
                ("api.example.com".to_string(), vec![ip("169.254.171.1")]),
            ],
        )
    }

    /// A compact rendering of a lookup: rcode word, answer data, owner of the SOA.
    fn render(zone: &Zone, query: &str, qtype: RecordType) -> String {
        match zone.lookup(&name(query), qtype) {
            Lookup::Found { answers, soa } => {
                let data: Vec<String> = answers.iter().map(|r| r.data.to_string()).collect();
                format!("NOERROR [{}] soa={}", data.join(","), soa.name)
            }
            Lookup::NxDomain { soa } => format!("NXDOMAIN soa={}", soa.name),
            Lookup::Refused => "REFUSED".to_string(),
        }
    }

    fn serial(zone: &Zone, apex: &str) -> u32 {
        match zone.lookup(&name(apex), RecordType::SOA) {
            Lookup::Found {
                answers: [record], ..
            } => match &record.data {
                RData::SOA(soa) => soa.serial,
                other => panic!("not an SOA: {other:?}"),
            },
            other => panic!("no SOA at {apex}: {other:?}"),
        }
    }

    #[test]
    fn client_views_table() {
        let addr = |a: &str| -> IpAddr { a.parse().unwrap() };
        let net = |n: &str| -> ipnet::IpNet { n.parse().unwrap() };
        let view =
            |to: &str| Zone::new([ZONE.to_string()], [(SERVICE.to_string(), vec![addr(to)])]);
        let zone = Zone::new([ZONE.to_string()], []).with_client_views([
            (vec![net("10.0.0.0/16")], view("10.9.9.1")),
            (vec![net("10.0.1.0/24")], view("10.9.9.2")),
            (vec![net("10.7.0.0/16")], view("10.9.9.3")),
            (vec![net("10.7.0.0/16")], view("10.9.9.4")),
        ]);
        let name = Name::from_ascii(format!("{SERVICE}.")).unwrap();
        let a_of = |client: &str| match zone.for_client(addr(client)).lookup(&name, RecordType::A) {
            Lookup::Found { answers, .. } => answers.first().map(|r| r.data.to_string()),
            _ => None,
        };
        for (client, want) in [
            ("10.0.5.5", Some("10.9.9.1")),
            ("10.0.1.5", Some("10.9.9.2")), // the longest prefix
            ("::ffff:10.0.1.5", Some("10.9.9.2")),
            ("10.8.0.1", None), // in no view: the default zone, without records
            ("10.7.0.1", None), // two views tie: the default zone
        ] {
            assert_eq!(a_of(client).as_deref(), want, "{client}");
        }
    }

    #[test]
    fn lookup_table() {
        let zone = sample();
        let apex = format!("{ZONE}.");
        let custom_soa = "api.example.com.";
        let cases: &[(&str, RecordType, String)] = &[
            (
                SERVICE,
                RecordType::A,
                format!("NOERROR [169.254.171.1] soa={apex}"),
            ),
            (
                SERVICE,
                RecordType::AAAA,
                format!("NOERROR [fd00:ec2:80::a9fe:ab01] soa={apex}"),
            ),
            (
                &SERVICE.to_uppercase(),
                RecordType::A,
                format!("NOERROR [169.254.171.1] soa={apex}"),
            ),
            (SERVICE, RecordType::TXT, format!("NOERROR [] soa={apex}")),
            (SERVICE, RecordType::ANY, format!("NOERROR [] soa={apex}")),
            (SERVICE, RecordType::SOA, format!("NOERROR [] soa={apex}")),
            (
                "v4only-0aaaaaaaaaaaaaaaa.7d67968.vpc-lattice-svcs.us-west-2.on.aws",
                RecordType::AAAA,
                format!("NOERROR [] soa={apex}"),
            ),
            // The partition label is an empty non-terminal: it exists.
            (
                "7d67968.vpc-lattice-svcs.us-west-2.on.aws",
                RecordType::A,
                format!("NOERROR [] soa={apex}"),
            ),
            (ZONE, RecordType::A, format!("NOERROR [] soa={apex}")),
            (ZONE, RecordType::NS, format!("NOERROR [] soa={apex}")),
            (
                "nope.7d67968.vpc-lattice-svcs.us-west-2.on.aws",
                RecordType::A,
                format!("NXDOMAIN soa={apex}"),
            ),
            (
                &format!("x.{SERVICE}"),
                RecordType::A,
                format!("NXDOMAIN soa={apex}"),
            ),
            (
                "api.example.com",
                RecordType::A,
                format!("NOERROR [169.254.171.1] soa={custom_soa}"),
            ),
            (
                "API.Example.COM",
                RecordType::AAAA,
                format!("NOERROR [] soa={custom_soa}"),
            ),
            ("www.api.example.com", RecordType::A, "REFUSED".to_string()),
            ("example.com", RecordType::A, "REFUSED".to_string()),
            ("on.aws", RecordType::A, "REFUSED".to_string()),
            (
                "vpc-lattice-svcs.us-east-1.on.aws",
                RecordType::A,
                "REFUSED".to_string(),
            ),
        ];
        for (query, qtype, expected) in cases {
            assert_eq!(&render(&zone, query, *qtype), expected, "{query} {qtype}");
        }
    }

    #[test]
    fn soa_fields() {
        let zone = sample();
        let Lookup::Found {
            answers: [record], ..
        } = zone.lookup(&name(ZONE), RecordType::SOA)
        else {
            panic!("no SOA at the apex");
        };
        assert_eq!(record.ttl, TTL);
        let RData::SOA(soa) = &record.data else {
            panic!("not an SOA")
        };
        assert_eq!(soa.mname, name(ZONE));
        assert_eq!(soa.rname, name(&format!("hostmaster.{ZONE}")));
        assert_eq!(soa.minimum, TTL);
    }

    #[test]
    fn trailing_dot_case_and_duplicates_are_one_name() {
        let zone = Zone::new(
            [format!("{ZONE}."), ZONE.to_uppercase()],
            [
                (format!("{SERVICE}."), vec![ip("10.0.0.1")]),
                (SERVICE.to_uppercase(), vec![ip("10.0.0.2"), ip("10.0.0.1")]),
            ],
        );
        assert_eq!(zone.apexes.len(), 1);
        assert_eq!(
            render(&zone, SERVICE, RecordType::A),
            format!("NOERROR [10.0.0.1,10.0.0.2] soa={ZONE}.")
        );
    }

    #[test]
    fn serial_is_deterministic_and_follows_content() {
        let base = serial(&sample(), ZONE);
        assert_eq!(base, serial(&sample(), ZONE), "same content, same serial");

        let reordered = Zone::new(
            [ZONE.to_string()],
            [
                ("api.example.com".to_string(), vec![ip("169.254.171.1")]),
                (
                    "v4only-0aaaaaaaaaaaaaaaa.7d67968.vpc-lattice-svcs.us-west-2.on.aws"
                        .to_string(),
                    vec![ip("169.254.171.2")],
                ),
                (
                    SERVICE.to_string(),
                    vec![ip("fd00:ec2:80::a9fe:ab01"), ip("169.254.171.1")],
                ),
            ],
        );
        assert_eq!(
            base,
            serial(&reordered, ZONE),
            "input order does not matter"
        );

        let moved = Zone::new(
            [ZONE.to_string()],
            [(SERVICE.to_string(), vec![ip("169.254.171.9")])],
        );
        assert_ne!(
            base,
            serial(&moved, ZONE),
            "changed content, changed serial"
        );

        // A custom domain name has its own SOA; changing it leaves the zone's serial alone.
        let custom_changed = Zone::new(
            [ZONE.to_string()],
            [
                (
                    SERVICE.to_string(),
                    vec![ip("169.254.171.1"), ip("fd00:ec2:80::a9fe:ab01")],
                ),
                (
                    "v4only-0aaaaaaaaaaaaaaaa.7d67968.vpc-lattice-svcs.us-west-2.on.aws"
                        .to_string(),
                    vec![ip("169.254.171.2")],
                ),
                ("api.example.com".to_string(), vec![ip("169.254.171.7")]),
            ],
        );
        assert_eq!(base, serial(&custom_changed, ZONE));
        assert_ne!(
            serial(&sample(), "api.example.com"),
            serial(&custom_changed, "api.example.com")
        );
    }

    #[test]
    fn nested_zones_keep_the_inner_zone_reachable() {
        let zone = Zone::new(
            ["on.aws".to_string(), ZONE.to_string()],
            [(SERVICE.to_string(), vec![ip("10.0.0.1")])],
        );
        // Between the two apexes: empty non-terminals of the outer zone, not NXDOMAIN.
        assert_eq!(
            render(&zone, "us-west-2.on.aws", RecordType::A),
            "NOERROR [] soa=on.aws."
        );
        assert_eq!(
            render(&zone, "other.on.aws", RecordType::A),
            "NXDOMAIN soa=on.aws."
        );
        assert_eq!(
            render(&zone, SERVICE, RecordType::A),
            format!("NOERROR [10.0.0.1] soa={ZONE}.")
        );
        assert_eq!(
            render(&zone, &format!("x.{ZONE}"), RecordType::A),
            format!("NXDOMAIN soa={ZONE}.")
        );
    }

    #[test]
    fn a_custom_domain_inside_a_zone_belongs_to_the_zone() {
        let zone = Zone::new(
            [ZONE.to_string()],
            [(format!("shop.{ZONE}"), vec![ip("10.0.0.1")])],
        );
        assert_eq!(
            render(&zone, &format!("shop.{ZONE}"), RecordType::A),
            format!("NOERROR [10.0.0.1] soa={ZONE}.")
        );
        assert_eq!(
            render(&zone, &format!("www.shop.{ZONE}"), RecordType::A),
            format!("NXDOMAIN soa={ZONE}.")
        );
    }

    #[test]
    fn a_record_at_the_apex_and_an_empty_address_list() {
        let zone = Zone::new(
            ["example.net".to_string()],
            [
                ("example.net".to_string(), vec![ip("10.0.0.1")]),
                ("empty.example.net".to_string(), vec![]),
            ],
        );
        assert_eq!(
            render(&zone, "example.net", RecordType::A),
            "NOERROR [10.0.0.1] soa=example.net."
        );
        assert_eq!(
            render(&zone, "example.net", RecordType::SOA)
                .split(' ')
                .next(),
            Some("NOERROR")
        );
        assert_eq!(
            render(&zone, "empty.example.net", RecordType::A),
            "NOERROR [] soa=example.net."
        );
    }

    #[test]
    fn invalid_and_root_names_are_skipped() {
        let zone = Zone::new(
            [
                "".to_string(),
                ".".to_string(),
                "bad..name".to_string(),
                ZONE.to_string(),
            ],
            [
                ("a..b".to_string(), vec![ip("10.0.0.1")]),
                (format!("{}.com", "x".repeat(64)), vec![ip("10.0.0.1")]),
                (SERVICE.to_string(), vec![ip("10.0.0.2")]),
            ],
        );
        assert_eq!(zone.apexes.len(), 1);
        assert_eq!(
            render(&zone, SERVICE, RecordType::A),
            format!("NOERROR [10.0.0.2] soa={ZONE}.")
        );
        assert_eq!(render(&zone, "com", RecordType::A), "REFUSED");
    }

    #[test]
    fn the_empty_zone_refuses_everything() {
        assert_eq!(render(&Zone::default(), SERVICE, RecordType::A), "REFUSED");
    }
}
