//! Whole-server tests: a real `DnsServer` on an ephemeral loopback port, queried over UDP and TCP
//! by hickory's DNS client, by `dig` (Debian package `dnsutils`), and by hand-built packets for
//! framing, malformed input and protocol edge cases.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::client::{Client, ClientHandle};
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::net::tcp::TcpClientStream;
use hickory_server::net::udp::UdpClientStream;
use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use trellis_dns::{DnsServer, TTL, Zone};

const ZONE: &str = "vpc-lattice-svcs.us-west-2.on.aws";
const SVC: &str = "billing-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-west-2.on.aws";
const V4ONLY: &str = "inventory-0fedcba9876543210.7d67968.vpc-lattice-svcs.us-west-2.on.aws";
const CUSTOM: &str = "api.example.com";

/// Every wait in these tests is for a reply that should come; this bounds a broken server.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Harness

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn sample_zone() -> Zone {
    Zone::new(
        [ZONE.to_string()],
        [
            (
                SVC.to_string(),
                vec![
                    ip("169.254.171.1"),
                    ip("169.254.171.2"),
                    ip("fd00:ec2:80::a9fe:ab01"),
                ],
            ),
            (V4ONLY.to_string(), vec![ip("169.254.171.3")]),
            (CUSTOM.to_string(), vec![ip("169.254.171.1")]),
        ],
    )
}

/// A server running on 127.0.0.1 with an ephemeral port, plus the handles to drive it.
struct Running {
    addr: SocketAddr,
    zones: watch::Sender<Arc<Zone>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl Running {
    async fn start(zone: Zone) -> Running {
        let (zones, receiver) = watch::channel(Arc::new(zone));
        let server = DnsServer::bind("127.0.0.1:0".parse().unwrap(), receiver)
            .await
            .expect("bind");
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            zones,
            stop,
            task,
        }
    }

    async fn shut_down(self) -> io::Result<()> {
        self.stop.send(()).unwrap();
        timeout(REPLY_TIMEOUT, self.task)
            .await
            .expect("server stops promptly")
            .expect("server task did not panic")
    }
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Udp,
    Tcp,
}

async fn client(addr: SocketAddr, transport: Transport) -> Client<TokioRuntimeProvider> {
    // The client's background future does the actual I/O; it ends when the client is dropped.
    match transport {
        Transport::Udp => {
            let stream = UdpClientStream::builder(addr, TokioRuntimeProvider::default()).build();
            let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
            tokio::spawn(background);
            client
        }
        Transport::Tcp => {
            let (stream, sender) =
                TcpClientStream::new(addr, None, None, TokioRuntimeProvider::new());
            let (client, background) =
                Client::<TokioRuntimeProvider>::new(stream.await.expect("TCP connect"), sender);
            tokio::spawn(background);
            client
        }
    }
}

/// What a response says, in a form a table can spell out.
#[derive(Debug, PartialEq)]
struct Outcome {
    rcode: ResponseCode,
    authoritative: bool,
    /// `"A 1.2.3.4"`, `"AAAA ::1"`, `"SOA <mname> <rname>"`, sorted.
    answers: Vec<String>,
    /// Owner of the SOA in the authority section, if any.
    soa: Option<String>,
}

fn render(record: &Record) -> String {
    assert_eq!(record.ttl, TTL, "TTL of {record}");
    match &record.data {
        RData::A(a) => format!("A {}", a.0),
        RData::AAAA(aaaa) => format!("AAAA {}", aaaa.0),
        RData::SOA(soa) => format!("SOA {} {}", soa.mname, soa.rname),
        other => format!("{} {other}", record.record_type()),
    }
}

fn outcome(message: &Message) -> Outcome {
    assert_eq!(message.metadata.message_type, MessageType::Response);
    assert!(
        !message.metadata.recursion_available,
        "an authoritative-only server must not offer recursion"
    );
    let mut answers: Vec<String> = message.answers.iter().map(render).collect();
    answers.sort();
    let soas: Vec<String> = message
        .authorities
        .iter()
        .filter(|record| record.record_type() == RecordType::SOA)
        .map(|record| {
            render(record);
            record.name.to_string()
        })
        .collect();
    assert!(soas.len() <= 1, "at most one SOA: {soas:?}");
    Outcome {
        rcode: message.metadata.response_code,
        authoritative: message.metadata.authoritative,
        answers,
        soa: soas.into_iter().next(),
    }
}

async fn ask(client: &mut Client<TokioRuntimeProvider>, name: &str, qtype: RecordType) -> Outcome {
    let query = client.query(Name::from_ascii(name).unwrap(), DNSClass::IN, qtype);
    let response = timeout(REPLY_TIMEOUT, query)
        .await
        .unwrap_or_else(|_| panic!("no reply to {name} {qtype}"))
        .unwrap_or_else(|error| panic!("{name} {qtype}: {error}"));
    outcome(&response)
}

/// One row of the answer table.
struct Case {
    name: &'static str,
    qtype: RecordType,
    rcode: ResponseCode,
    answers: &'static [&'static str],
    soa: Option<&'static str>,
}

impl Case {
    fn expected(&self) -> Outcome {
        let mut answers: Vec<String> = self.answers.iter().map(|a| a.to_string()).collect();
        answers.sort();
        Outcome {
            rcode: self.rcode,
            // Everything we answer for we answer authoritatively; REFUSED is not an answer.
            authoritative: self.rcode != ResponseCode::Refused,
            answers,
            soa: self.soa.map(str::to_string),
        }
    }
}

const ZONE_SOA: Option<&str> = Some("vpc-lattice-svcs.us-west-2.on.aws.");
const CUSTOM_SOA: Option<&str> = Some("api.example.com.");

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Generated service names.
    Case { name: SVC, qtype: RecordType::A, rcode: ResponseCode::NoError, answers: &["A 169.254.171.1", "A 169.254.171.2"], soa: None },
    Case { name: SVC, qtype: RecordType::AAAA, rcode: ResponseCode::NoError, answers: &["AAAA fd00:ec2:80::a9fe:ab01"], soa: None },
    Case { name: "BILLING-0123456789ABCDEF0.7d67968.VPC-LATTICE-SVCS.us-west-2.on.aws", qtype: RecordType::A, rcode: ResponseCode::NoError, answers: &["A 169.254.171.1", "A 169.254.171.2"], soa: None },
    Case { name: "billing-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-west-2.on.aws.", qtype: RecordType::A, rcode: ResponseCode::NoError, answers: &["A 169.254.171.1", "A 169.254.171.2"], soa: None },
    Case { name: V4ONLY, qtype: RecordType::A, rcode: ResponseCode::NoError, answers: &["A 169.254.171.3"], soa: None },
    // NODATA: the name exists, the type does not.
    Case { name: V4ONLY, qtype: RecordType::AAAA, rcode: ResponseCode::NoError, answers: &[], soa: ZONE_SOA },
    Case { name: SVC, qtype: RecordType::TXT, rcode: ResponseCode::NoError, answers: &[], soa: ZONE_SOA },
    Case { name: SVC, qtype: RecordType::MX, rcode: ResponseCode::NoError, answers: &[], soa: ZONE_SOA },
    Case { name: SVC, qtype: RecordType::ANY, rcode: ResponseCode::NoError, answers: &[], soa: ZONE_SOA },
    Case { name: SVC, qtype: RecordType::CNAME, rcode: ResponseCode::NoError, answers: &[], soa: ZONE_SOA },
    // The partition label is an empty non-terminal: it exists (RFC 8020 resolvers rely on it).
    Case { name: "7d67968.vpc-lattice-svcs.us-west-2.on.aws", qtype: RecordType::A, rcode: ResponseCode::NoError, answers: &[], soa: ZONE_SOA },
    // The apex.
    Case { name: ZONE, qtype: RecordType::SOA, rcode: ResponseCode::NoError, answers: &["SOA vpc-lattice-svcs.us-west-2.on.aws. hostmaster.vpc-lattice-svcs.us-west-2.on.aws."], soa: None },
    Case { name: ZONE, qtype: RecordType::A, rcode: ResponseCode::NoError, answers: &[], soa: ZONE_SOA },
    Case { name: ZONE, qtype: RecordType::NS, rcode: ResponseCode::NoError, answers: &[], soa: ZONE_SOA },
    // Unknown names inside the zone.
    Case { name: "nope-0000000000000000.7d67968.vpc-lattice-svcs.us-west-2.on.aws", qtype: RecordType::A, rcode: ResponseCode::NXDomain, answers: &[], soa: ZONE_SOA },
    Case { name: "www.billing-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-west-2.on.aws", qtype: RecordType::AAAA, rcode: ResponseCode::NXDomain, answers: &[], soa: ZONE_SOA },
    Case { name: "other.vpc-lattice-svcs.us-west-2.on.aws", qtype: RecordType::TXT, rcode: ResponseCode::NXDomain, answers: &[], soa: ZONE_SOA },
    // A custom domain name is authoritative for itself only.
    Case { name: CUSTOM, qtype: RecordType::A, rcode: ResponseCode::NoError, answers: &["A 169.254.171.1"], soa: None },
    Case { name: "API.EXAMPLE.COM.", qtype: RecordType::A, rcode: ResponseCode::NoError, answers: &["A 169.254.171.1"], soa: None },
    Case { name: CUSTOM, qtype: RecordType::AAAA, rcode: ResponseCode::NoError, answers: &[], soa: CUSTOM_SOA },
    Case { name: CUSTOM, qtype: RecordType::SOA, rcode: ResponseCode::NoError, answers: &["SOA api.example.com. hostmaster.api.example.com."], soa: None },
    Case { name: "www.api.example.com", qtype: RecordType::A, rcode: ResponseCode::Refused, answers: &[], soa: None },
    Case { name: "example.com", qtype: RecordType::A, rcode: ResponseCode::Refused, answers: &[], soa: None },
    // Outside every zone.
    Case { name: "on.aws", qtype: RecordType::A, rcode: ResponseCode::Refused, answers: &[], soa: None },
    Case { name: "us-west-2.on.aws", qtype: RecordType::A, rcode: ResponseCode::Refused, answers: &[], soa: None },
    Case { name: "x.vpc-lattice-svcs.us-east-1.on.aws", qtype: RecordType::A, rcode: ResponseCode::Refused, answers: &[], soa: None },
    Case { name: "www.google.com", qtype: RecordType::AAAA, rcode: ResponseCode::Refused, answers: &[], soa: None },
];

// ---------------------------------------------------------------------------------------------
// The answer table through hickory's client

#[tokio::test]
async fn answer_table_over_udp_and_tcp() {
    let server = Running::start(sample_zone()).await;
    for transport in [Transport::Udp, Transport::Tcp] {
        // One client per transport: over TCP every case also travels on the same connection.
        let mut client = client(server.addr, transport).await;
        for case in CASES {
            let got = ask(&mut client, case.name, case.qtype).await;
            assert_eq!(
                got,
                case.expected(),
                "{transport:?} {} {}",
                case.name,
                case.qtype
            );
        }
    }
    server.shut_down().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The answer table through dig

/// Whether `dig` can run. Locally a missing dig skips the test with a note; in CI (`CI` set) it
/// fails, so that a missing install step cannot hide behind a green run.
fn dig_available() -> bool {
    let found = std::process::Command::new("dig")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "dig is required in CI: install the Debian package `dnsutils`"
        );
        eprintln!("skipping: dig not found (install the Debian package `dnsutils`)");
    }
    found
}

/// Runs dig and reads its presentation output back into an [`Outcome`].
async fn dig(addr: SocketAddr, name: &str, qtype: RecordType, transport: Transport) -> Outcome {
    let output = tokio::process::Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string()])
        .arg(match transport {
            Transport::Udp => "+notcp",
            Transport::Tcp => "+tcp",
        })
        .args([
            "+tries=1",
            "+timeout=5",
            "+norecurse",
            "+noall",
            "+comments",
        ])
        .args(["+answer", "+authority", "+nottlunits"])
        .arg(name)
        .arg(qtype.to_string())
        .output()
        .await
        .expect("run dig");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "dig {name} {qtype} failed: {text}");

    let mut rcode = None;
    let mut authoritative = false;
    let mut answers = Vec::new();
    let mut soa = None;
    let mut section = "";
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            let status = rest.split(',').next().unwrap().trim();
            rcode = Some(match status {
                "NOERROR" => ResponseCode::NoError,
                "NXDOMAIN" => ResponseCode::NXDomain,
                "REFUSED" => ResponseCode::Refused,
                other => panic!("unexpected status {other}"),
            });
        } else if let Some(rest) = line.strip_prefix(";; flags:") {
            let flags = rest.split(';').next().unwrap();
            authoritative = flags.split_whitespace().any(|flag| flag == "aa");
            assert!(!flags.split_whitespace().any(|flag| flag == "ra"), "{line}");
        } else if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
        } else if line.is_empty() || line.starts_with(';') {
            if line.is_empty() {
                section = "";
            }
        } else {
            // owner TTL class type rdata...
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields[1], TTL.to_string(), "TTL in {line}");
            let rendered = match fields[3] {
                "SOA" => format!("SOA {} {}", fields[4], fields[5]),
                kind => format!("{kind} {}", fields[4..].join(" ")),
            };
            match section {
                "answer" => answers.push(rendered),
                "authority" if fields[3] == "SOA" => soa = Some(fields[0].to_string()),
                _ => panic!("unexpected record line {line}"),
            }
        }
    }
    answers.sort();
    Outcome {
        rcode: rcode.unwrap_or_else(|| panic!("no status in dig output: {text}")),
        authoritative,
        answers,
        soa,
    }
}

#[tokio::test]
async fn answer_table_with_dig() {
    if !dig_available() {
        return;
    }
    let server = Running::start(sample_zone()).await;
    for transport in [Transport::Udp, Transport::Tcp] {
        for case in CASES {
            let got = dig(server.addr, case.name, case.qtype, transport).await;
            assert_eq!(
                got,
                case.expected(),
                "dig {transport:?} {} {}",
                case.name,
                case.qtype
            );
        }
    }
    server.shut_down().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Zone swaps

fn soa_serial(outcome_message: &Message) -> u32 {
    match &outcome_message.answers[..] {
        [record] => match &record.data {
            RData::SOA(soa) => soa.serial,
            other => panic!("not an SOA: {other:?}"),
        },
        other => panic!("expected one SOA, got {other:?}"),
    }
}

async fn serial(client: &mut Client<TokioRuntimeProvider>) -> u32 {
    let query = client.query(
        Name::from_ascii(ZONE).unwrap(),
        DNSClass::IN,
        RecordType::SOA,
    );
    soa_serial(&timeout(REPLY_TIMEOUT, query).await.unwrap().unwrap())
}

#[tokio::test]
async fn a_zone_swap_is_visible_on_the_next_query() {
    let one = |svc: &str, address: &str| {
        Zone::new([ZONE.to_string()], [(svc.to_string(), vec![ip(address)])])
    };
    let new_svc = "orders-0aaaaaaaaaaaaaaaa.7d67968.vpc-lattice-svcs.us-west-2.on.aws";
    let server = Running::start(one(SVC, "10.0.0.1")).await;
    // Clients connected before the swaps: an open TCP connection must see new zones too.
    let mut udp = client(server.addr, Transport::Udp).await;
    let mut tcp = client(server.addr, Transport::Tcp).await;

    for client in [&mut udp, &mut tcp] {
        assert_eq!(
            ask(client, SVC, RecordType::A).await.answers,
            ["A 10.0.0.1"]
        );
        assert_eq!(
            ask(client, new_svc, RecordType::A).await.rcode,
            ResponseCode::NXDomain
        );
    }
    let first_serial = serial(&mut udp).await;

    // Publish: the address moves and a service appears.
    server.zones.send_replace(Arc::new(Zone::new(
        [ZONE.to_string()],
        [
            (SVC.to_string(), vec![ip("10.0.0.2")]),
            (new_svc.to_string(), vec![ip("10.0.0.3")]),
        ],
    )));
    for client in [&mut udp, &mut tcp] {
        assert_eq!(
            ask(client, SVC, RecordType::A).await.answers,
            ["A 10.0.0.2"]
        );
        assert_eq!(
            ask(client, new_svc, RecordType::A).await.answers,
            ["A 10.0.0.3"]
        );
    }
    let second_serial = serial(&mut tcp).await;
    assert_ne!(
        first_serial, second_serial,
        "the SOA serial follows the zone"
    );

    // Publish: the service is deleted.
    server
        .zones
        .send_replace(Arc::new(one(new_svc, "10.0.0.3")));
    for client in [&mut udp, &mut tcp] {
        assert_eq!(
            ask(client, SVC, RecordType::A).await.rcode,
            ResponseCode::NXDomain
        );
    }

    // Publishing the same content again keeps the serial: it is a function of the content.
    let third_serial = serial(&mut udp).await;
    server
        .zones
        .send_replace(Arc::new(one(new_svc, "10.0.0.3")));
    assert_eq!(serial(&mut udp).await, third_serial);

    // The publisher going away leaves the last zone in service.
    let Running {
        zones, stop, task, ..
    } = server;
    zones.send_replace(Arc::new(one(SVC, "10.0.0.9")));
    drop(zones);
    for client in [&mut udp, &mut tcp] {
        assert_eq!(
            ask(client, SVC, RecordType::A).await.answers,
            ["A 10.0.0.9"]
        );
    }
    stop.send(()).unwrap();
    timeout(REPLY_TIMEOUT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Hand-built packets: malformed input, framing, protocol edge cases

fn query_message(id: u16, name: &str, qtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message
}

fn header(id: u16, flags: u16, qdcount: u16) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(12);
    for field in [id, flags, qdcount, 0, 0, 0] {
        bytes.extend_from_slice(&field.to_be_bytes());
    }
    bytes
}

/// Reads datagrams until a reply for every id in `ids` has arrived, and returns those replies in
/// the order of `ids`. Other datagrams (late replies to earlier garbage) are skipped: the server
/// answers each datagram on its own task, so replies need not arrive in order.
async fn receive(socket: &UdpSocket, ids: &[u16]) -> Vec<Message> {
    let mut found: Vec<Option<Message>> = ids.iter().map(|_| None).collect();
    let mut buffer = vec![0; 65_535];
    while found.iter().any(Option::is_none) {
        let length = timeout(REPLY_TIMEOUT, socket.recv(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("no reply for all of {ids:04x?}"))
            .unwrap();
        let message = Message::from_vec(&buffer[..length]).expect("server replies are valid DNS");
        if let Some(slot) = ids.iter().position(|id| *id == message.metadata.id) {
            found[slot] = Some(message);
        }
    }
    found.into_iter().map(Option::unwrap).collect()
}

/// Sends one query and returns its reply.
async fn exchange_udp(socket: &UdpSocket, request: &Message) -> Message {
    socket.send(&request.to_vec().unwrap()).await.unwrap();
    receive(socket, &[request.metadata.id]).await.remove(0)
}

#[tokio::test]
async fn malformed_udp_packets_do_not_kill_the_server() {
    let server = Running::start(sample_zone()).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server.addr).await.unwrap();

    let mut response_to_a_query = query_message(0x4444, SVC, RecordType::A).into_response();
    response_to_a_query.metadata.id = 0x4444;
    let mut pseudo_random = Vec::with_capacity(700);
    let mut state: u32 = 0x1234_5678;
    for _ in 0..700 {
        // A fixed linear congruential sequence: arbitrary bytes, the same on every run.
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        pseudo_random.push((state >> 24) as u8);
    }
    let with = |mut head: Vec<u8>, tail: &[u8]| {
        head.extend_from_slice(tail);
        head
    };

    // (description, packet, the FORMERR reply it must get, keyed by its id)
    let garbage: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        ("empty datagram", vec![], None),
        ("two bytes", vec![0xde, 0xad], None),
        (
            "header promising a question that is not there",
            header(0x1111, 0x0100, 1),
            Some(0x1111),
        ),
        (
            "no question at all",
            header(0x2222, 0x0100, 0),
            Some(0x2222),
        ),
        (
            "compression pointer to itself",
            with(header(0x3333, 0x0100, 1), &[0xc0, 0x0c, 0, 1, 0, 1]),
            Some(0x3333),
        ),
        (
            "label longer than the packet",
            with(header(0x5555, 0x0100, 1), &[0x3f, b'a', b'b']),
            Some(0x5555),
        ),
        (
            "a response, not a query",
            response_to_a_query.to_vec().unwrap(),
            None,
        ),
        ("pseudo-random bytes", pseudo_random, None),
    ];

    for (index, (what, packet, formerr_id)) in garbage.into_iter().enumerate() {
        socket.send(&packet).await.unwrap();
        // A valid query right behind the garbage: the server must still answer it.
        let id = 0x7000 + index as u16;
        let valid = query_message(id, SVC, RecordType::A);
        socket.send(&valid.to_vec().unwrap()).await.unwrap();
        let ids: Vec<u16> = [id].into_iter().chain(formerr_id).collect();
        let replies = receive(&socket, &ids).await;
        assert_eq!(
            replies[0].metadata.response_code,
            ResponseCode::NoError,
            "after {what}"
        );
        assert_eq!(replies[0].answers.len(), 2, "after {what}");
        if formerr_id.is_some() {
            assert_eq!(
                replies[1].metadata.response_code,
                ResponseCode::FormErr,
                "{what}"
            );
        }
    }
    server.shut_down().await.unwrap();
}

/// Protocol corner cases: (description, request, expected response code, AA bit).
#[tokio::test]
async fn protocol_edge_cases_over_udp() {
    let server = Running::start(sample_zone()).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server.addr).await.unwrap();

    let mut two_questions = query_message(1, SVC, RecordType::A);
    two_questions.add_query(Query::query(
        Name::from_ascii(V4ONLY).unwrap(),
        RecordType::A,
    ));
    let mut notify = query_message(2, ZONE, RecordType::SOA);
    notify.metadata.op_code = OpCode::Notify;
    let mut edns_v1 = query_message(3, SVC, RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1);
    edns_v1.set_edns(edns);
    let mut chaos = query_message(4, "version.bind", RecordType::TXT);
    chaos.queries[0].set_query_class(DNSClass::CH);
    let axfr = query_message(5, ZONE, RecordType::AXFR);
    let plain = query_message(6, SVC, RecordType::A);

    let cases: Vec<(&str, Message, ResponseCode, bool)> = vec![
        ("two questions", two_questions, ResponseCode::FormErr, false),
        ("NOTIFY", notify, ResponseCode::NotImp, false),
        ("EDNS version 1", edns_v1, ResponseCode::BADVERS, false),
        ("class CH", chaos, ResponseCode::Refused, false),
        ("zone transfer", axfr, ResponseCode::Refused, false),
        ("plain query", plain, ResponseCode::NoError, true),
    ];
    for (what, request, rcode, authoritative) in cases {
        let reply = exchange_udp(&socket, &request).await;
        // Compared as numbers: BADVERS and BADSIG share code 16, and the decoder names it BADSIG.
        assert_eq!(
            u16::from(reply.metadata.response_code),
            u16::from(rcode),
            "{what}"
        );
        assert_eq!(reply.metadata.authoritative, authoritative, "{what}");
        assert!(
            reply.metadata.recursion_desired,
            "{what}: RD is copied from the query"
        );
        assert!(!reply.metadata.recursion_available, "{what}");
        assert_eq!(
            reply.edns.is_some(),
            request.edns.is_some(),
            "{what}: EDNS in, EDNS out"
        );
    }

    // With EDNS in the query, the reply carries EDNS version 0.
    let mut with_edns = query_message(7, SVC, RecordType::AAAA);
    with_edns.set_edns(Edns::new());
    let reply = exchange_udp(&socket, &with_edns).await;
    assert_eq!(reply.edns.as_ref().map(Edns::version), Some(0));
    assert_eq!(reply.answers.len(), 1);

    server.shut_down().await.unwrap();
}

async fn write_framed(stream: &mut TcpStream, messages: &[Vec<u8>]) {
    // All messages in one write: pipelined queries must be split by their length prefixes.
    let mut bytes = Vec::new();
    for message in messages {
        bytes.extend_from_slice(&u16::try_from(message.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(message);
    }
    stream.write_all(&bytes).await.unwrap();
}

async fn read_framed(stream: &mut TcpStream) -> Message {
    let read = async {
        let length = stream.read_u16().await.unwrap();
        let mut buffer = vec![0; usize::from(length)];
        stream.read_exact(&mut buffer).await.unwrap();
        Message::from_vec(&buffer).unwrap()
    };
    timeout(REPLY_TIMEOUT, read).await.expect("a framed reply")
}

#[tokio::test]
async fn tcp_uses_length_prefixed_messages() {
    let server = Running::start(sample_zone()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();

    // Pipelined queries on one connection, including a zone transfer that is refused.
    write_framed(
        &mut stream,
        &[
            query_message(1, SVC, RecordType::A).to_vec().unwrap(),
            query_message(2, "nope.vpc-lattice-svcs.us-west-2.on.aws", RecordType::A)
                .to_vec()
                .unwrap(),
            query_message(3, ZONE, RecordType::AXFR).to_vec().unwrap(),
        ],
    )
    .await;
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(read_framed(&mut stream).await);
    }
    replies.sort_by_key(|reply| reply.metadata.id);
    assert_eq!(
        outcome(&replies[0]).answers,
        ["A 169.254.171.1", "A 169.254.171.2"]
    );
    assert_eq!(replies[1].metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(replies[2].metadata.response_code, ResponseCode::Refused);

    // A framed message too short to be DNS is dropped, and the connection keeps working.
    write_framed(&mut stream, &[vec![1, 2, 3]]).await;
    write_framed(
        &mut stream,
        &[query_message(4, CUSTOM, RecordType::A).to_vec().unwrap()],
    )
    .await;
    let reply = read_framed(&mut stream).await;
    assert_eq!(reply.metadata.id, 4);
    assert_eq!(outcome(&reply).answers, ["A 169.254.171.1"]);

    // A connection that dies mid-message harms no one else.
    let mut broken = TcpStream::connect(server.addr).await.unwrap();
    broken.write_all(&[0x01, 0x00, 0xab]).await.unwrap();
    drop(broken);
    let mut fresh = TcpStream::connect(server.addr).await.unwrap();
    write_framed(
        &mut fresh,
        &[query_message(5, SVC, RecordType::AAAA).to_vec().unwrap()],
    )
    .await;
    assert_eq!(
        outcome(&read_framed(&mut fresh).await).answers,
        ["AAAA fd00:ec2:80::a9fe:ab01"]
    );

    server.shut_down().await.unwrap();
}

/// `answer_bytes` (the pure entry point the fuzz target drives) must answer exactly what the
/// server sends over TCP, byte for byte, and nothing where the server's handler is not reached.
#[tokio::test]
async fn answer_bytes_is_what_the_server_sends() {
    let server = Running::start(sample_zone()).await;
    let zone = sample_zone();
    let mut edns_v1 = query_message(6, SVC, RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1);
    edns_v1.edns = Some(edns);
    let mut notify = query_message(7, ZONE, RecordType::SOA);
    notify.metadata.op_code = OpCode::Notify;
    let mut two = query_message(8, SVC, RecordType::A);
    two.add_query(Query::query(
        Name::from_ascii(ZONE).unwrap(),
        RecordType::SOA,
    ));
    let queries = [
        query_message(1, SVC, RecordType::A),
        query_message(2, SVC, RecordType::AAAA),
        query_message(3, "nope.vpc-lattice-svcs.us-west-2.on.aws", RecordType::A),
        query_message(4, ZONE, RecordType::AXFR),
        query_message(5, CUSTOM, RecordType::MX),
        edns_v1,
        notify,
        two,
    ];
    for query in &queries {
        let bytes = query.to_vec().unwrap();
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        write_framed(&mut stream, std::slice::from_ref(&bytes)).await;
        let read = async {
            let mut sent = vec![0; usize::from(stream.read_u16().await.unwrap())];
            stream.read_exact(&mut sent).await.unwrap();
            sent
        };
        let sent = timeout(REPLY_TIMEOUT, read).await.expect("a framed reply");
        let answered = trellis_dns::answer_bytes(&zone, &bytes).expect("an answer");
        assert_eq!(
            Message::from_vec(&answered).unwrap(),
            Message::from_vec(&sent).unwrap(),
            "{query:?}"
        );
        assert_eq!(answered, sent, "{query:?}");
    }

    // Not a query the handler sees: too short, undecodable after the header, a response.
    let mut response = query_message(9, SVC, RecordType::A);
    response.metadata.message_type = MessageType::Response;
    let mut truncated = query_message(10, SVC, RecordType::A).to_vec().unwrap();
    truncated.truncate(20);
    for bytes in [vec![1, 2, 3], truncated, response.to_vec().unwrap()] {
        assert_eq!(trellis_dns::answer_bytes(&zone, &bytes), None, "{bytes:?}");
    }
    server.shut_down().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Binding and shutdown

#[tokio::test]
async fn shutdown_releases_the_port() {
    let server = Running::start(sample_zone()).await;
    let addr = server.addr;
    let mut udp = client(addr, Transport::Udp).await;
    assert_eq!(
        ask(&mut udp, SVC, RecordType::A).await.rcode,
        ResponseCode::NoError
    );
    // An idle TCP connection must not hold shutdown up.
    let _idle = TcpStream::connect(addr).await.unwrap();
    server.shut_down().await.expect("clean shutdown");

    // Both sockets are gone: the same port binds again, UDP and TCP.
    let (_zones, receiver) = watch::channel(Arc::new(sample_zone()));
    let again = DnsServer::bind(addr, receiver)
        .await
        .expect("rebind the same port");
    assert_eq!(again.local_addr(), addr);
}

#[tokio::test]
async fn a_taken_fixed_port_is_an_error() {
    // A port whose TCP side is taken while its UDP side is free, so the failure is TCP's.
    let (addr, _taken) = loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = std::net::TcpListener::bind(addr) {
            break (addr, tcp);
        }
    };
    let (_zones, receiver) = watch::channel(Arc::new(Zone::default()));
    let error = DnsServer::bind(addr, receiver).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    assert!(error.to_string().contains("TCP"), "{error}");
}
