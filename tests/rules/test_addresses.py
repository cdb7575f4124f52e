"""Address and port sets: any, CIDR, lists, negation, variables, ranges and their errors."""

from __future__ import annotations

import ipaddress

import pytest

from inline_ips.rules.addresses import (
    ANY_ADDRESS,
    ANY_PORT,
    SetSyntaxError,
    parse_addresses,
    parse_ports,
)


def _has(text: str, addr: str, variables: dict[str, str] | None = None) -> bool:
    ip = ipaddress.ip_address(addr)
    return parse_addresses(text, variables).contains(ip.version, int(ip))


VARS = {
    "HOME_NET": "[10.0.0.0/8,192.168.0.0/16]",
    "EXTERNAL_NET": "!$HOME_NET",
    "DMZ": "$SERVERS",
    "SERVERS": "[$WEB,10.9.9.9]",
    "WEB": "172.16.0.1",
    "V6NET": "2001:db8::/32",
}


@pytest.mark.parametrize(
    ("text", "addr", "expected"),
    [
        # any
        ("any", "1.2.3.4", True),
        ("any", "::1", True),
        ("ANY", "255.255.255.255", True),
        # single addresses
        ("10.0.0.1", "10.0.0.1", True),
        ("10.0.0.1", "10.0.0.2", False),
        ("10.0.0.1", "10.0.0.0", False),
        ("2001:db8::1", "2001:db8::1", True),
        ("2001:db8::1", "2001:db8::2", False),
        # CIDR v4, boundaries and host bits set (non-strict)
        ("10.0.0.0/8", "10.0.0.0", True),
        ("10.0.0.0/8", "10.255.255.255", True),
        ("10.0.0.0/8", "11.0.0.0", False),
        ("10.0.0.0/8", "9.255.255.255", False),
        ("10.1.2.3/24", "10.1.2.200", True),
        ("10.1.2.3/24", "10.1.3.0", False),
        ("0.0.0.0/0", "203.0.113.9", True),
        ("0.0.0.0/0", "2001:db8::1", False),
        # CIDR v6
        ("2001:db8::/32", "2001:db8:ffff::1", True),
        ("2001:db8::/32", "2001:db9::", False),
        ("::/0", "::1", True),
        ("::/0", "1.2.3.4", False),
        # lists, nested lists, whitespace
        ("[10.0.0.1,10.0.0.3]", "10.0.0.3", True),
        ("[10.0.0.1,10.0.0.3]", "10.0.0.2", False),
        ("[10.0.0.1, [192.168.0.0/16, [172.16.0.0/12]]]", "172.20.1.1", True),
        ("[10.0.0.1, [192.168.0.0/16, [172.16.0.0/12]]]", "172.32.0.0", False),
        ("[ 10.0.0.1 , 2001:db8::/32 ]", "2001:db8::5", True),
        # negation of one value, of a list, inside a list
        ("!10.0.0.0/8", "10.1.1.1", False),
        ("!10.0.0.0/8", "11.1.1.1", True),
        ("!10.0.0.0/8", "2001:db8::1", True),
        ("![10.0.0.0/8,192.168.0.0/16]", "192.168.1.1", False),
        ("![10.0.0.0/8,192.168.0.0/16]", "10.1.1.1", False),
        ("![10.0.0.0/8,192.168.0.0/16]", "172.16.0.1", True),
        ("[10.0.0.0/8,!10.1.0.0/16]", "10.2.0.1", True),
        ("[10.0.0.0/8,!10.1.0.0/16]", "10.1.0.1", False),
        ("[10.0.0.0/8,!10.1.0.0/16]", "11.0.0.1", False),
        ("[any,!10.0.0.0/8]", "11.0.0.1", True),
        ("[any,!10.0.0.0/8]", "10.0.0.1", False),
        ("!any", "1.2.3.4", False),
        ("!any", "::1", False),
        ("!!10.0.0.1", "10.0.0.1", True),
        ("!!10.0.0.1", "10.0.0.2", False),
        # adjacent blocks merge into one interval without losing the edges
        ("[10.0.0.0/25,10.0.0.128/25]", "10.0.0.127", True),
        ("[10.0.0.0/25,10.0.0.128/25]", "10.0.0.128", True),
        ("[10.0.0.0/25,10.0.0.128/25]", "10.0.1.0", False),
    ],
)
def test_address_membership(text: str, addr: str, expected: bool) -> None:
    assert _has(text, addr) is expected


@pytest.mark.parametrize(
    ("text", "addr", "expected"),
    [
        ("$HOME_NET", "10.1.1.1", True),
        ("$HOME_NET", "192.168.5.5", True),
        ("$HOME_NET", "172.16.0.1", False),
        ("$EXTERNAL_NET", "10.1.1.1", False),
        ("$EXTERNAL_NET", "8.8.8.8", True),
        ("!$EXTERNAL_NET", "10.1.1.1", True),
        ("!$EXTERNAL_NET", "8.8.8.8", False),
        # nested variables: DMZ -> SERVERS -> [WEB, ...] -> 172.16.0.1
        ("$DMZ", "172.16.0.1", True),
        ("$DMZ", "10.9.9.9", True),
        ("$DMZ", "10.9.9.8", False),
        ("[$WEB,$V6NET]", "2001:db8::1", True),
        ("[$HOME_NET,!10.5.0.0/16]", "10.5.0.1", False),
        ("[$HOME_NET,!10.5.0.0/16]", "10.6.0.1", True),
    ],
)
def test_address_variables(text: str, addr: str, expected: bool) -> None:
    assert _has(text, addr, VARS) is expected


def test_v4_list_does_not_match_v6_with_the_same_integer() -> None:
    s = parse_addresses("[10.0.0.0/8,192.168.0.0/16]")
    ten = int(ipaddress.ip_address("10.0.0.1"))
    assert s.contains(4, ten) is True
    # The same integer read as an IPv6 address (::a00:1) is not in a v4-only list.
    assert s.contains(6, ten) is False
    assert s.contains(6, int(ipaddress.ip_address("::ffff:10.0.0.1"))) is False
    assert s.is_any is False


def test_v6_list_does_not_match_v4() -> None:
    s = parse_addresses("::/0")
    assert s.contains(6, 1) is True
    assert s.contains(4, 1) is False


def test_any_flags() -> None:
    assert parse_addresses("any").is_any is True
    assert parse_addresses("any") == ANY_ADDRESS
    assert parse_addresses("!10.0.0.0/8").is_any is False
    assert parse_addresses("[any,!10.0.0.1]").is_any is False
    assert parse_ports("any").is_any is True
    assert parse_ports("any") == ANY_PORT
    assert parse_ports("!80").is_any is False


def test_text_is_kept() -> None:
    assert parse_addresses("$HOME_NET", VARS).text == "$HOME_NET"
    assert parse_ports(80).text == "80"


@pytest.mark.parametrize(
    ("text", "variables", "message"),
    [
        ("$NOPE", {}, "undefined variable $NOPE"),
        ("[10.0.0.1,$NOPE]", {}, "undefined variable $NOPE"),
        ("$A", {"A": "$B", "B": "$MISSING"}, "undefined variable $MISSING"),
        ("$SELF", {"SELF": "$SELF"}, "variables nest too deep"),
        ("$SELF", {"SELF": "[10.0.0.1,$SELF]"}, "variables nest too deep"),
        ("$A", {"A": "$B", "B": "!$A"}, "variables nest too deep"),
        ("10.0.0.256", {}, "'10.0.0.256' is not an IP address or network"),
        ("10.0.0.0/33", {}, "'10.0.0.0/33' is not an IP address or network"),
        ("example.com", {}, "'example.com' is not an IP address or network"),
        ("", {}, "empty value"),
        ("!", {}, "empty value"),
        ("[10.0.0.1,]", {}, "empty element in list"),
        ("[10.0.0.1", {}, "is not closed with ']'"),
        ("[10.0.0.1]]", {}, "unbalanced ']'"),
        ("[[10.0.0.1]", {}, "unbalanced '['"),
    ],
)
def test_address_errors(text: str, variables: dict[str, str], message: str) -> None:
    with pytest.raises(SetSyntaxError) as exc:
        parse_addresses(text, variables)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("text", "port", "expected"),
    [
        ("any", 0, True),
        ("any", 65535, True),
        ("80", 80, True),
        ("80", 81, False),
        (443, 443, True),
        ("1024:", 1024, True),
        ("1024:", 65535, True),
        ("1024:", 1023, False),
        (":1023", 0, True),
        (":1023", 1023, True),
        (":1023", 1024, False),
        ("80:90", 79, False),
        ("80:90", 80, True),
        ("80:90", 85, True),
        ("80:90", 90, True),
        ("80:90", 91, False),
        ("0:65535", 12345, True),
        ("[80,443,8000:8080]", 443, True),
        ("[80,443,8000:8080]", 8080, True),
        ("[80,443,8000:8080]", 444, False),
        ("[80:90,!85]", 85, False),
        ("[80:90,!85]", 84, True),
        ("[80:90,![86,87]]", 87, False),
        ("[80:90,![86,87]]", 88, True),
        ("!80", 80, False),
        ("!80", 8080, True),
        ("![1:1023]", 22, False),
        ("![1:1023]", 0, True),
        ("[[22,[2222]],80]", 2222, True),
        ("[[22,[2222]],80]", 2223, False),
    ],
)
def test_port_membership(text: str | int, port: int, expected: bool) -> None:
    assert parse_ports(text).contains(port) is expected


@pytest.mark.parametrize(
    ("text", "port", "expected"),
    [
        ("$HTTP_PORTS", 8080, True),
        ("$HTTP_PORTS", 443, False),
        ("$WEB_ALL", 443, True),
        ("$WEB_ALL", 22, False),
        ("!$WEB_ALL", 22, True),
    ],
)
def test_port_variables(text: str, port: int, expected: bool) -> None:
    variables = {"HTTP_PORTS": "[80,8080]", "WEB_ALL": "[$HTTP_PORTS,443]"}
    assert parse_ports(text, variables).contains(port) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("65536", "outside 0-65535 or reversed"),
        ("-1", "outside 0-65535 or reversed"),
        ("90:80", "outside 0-65535 or reversed"),
        ("1000:70000", "outside 0-65535 or reversed"),
        ("http", "'http' is not a port, a range or 'any'"),
        ("80:9x", "'80:9x' is not a port, a range or 'any'"),
        ("[80,]", "empty element in list"),
        ("$PORTS", "undefined variable $PORTS"),
    ],
)
def test_port_errors(text: str, message: str) -> None:
    with pytest.raises(SetSyntaxError) as exc:
        parse_ports(text)
    assert message in str(exc.value)


def test_self_referential_port_variable_is_an_error() -> None:
    with pytest.raises(SetSyntaxError, match="variables nest too deep"):
        parse_ports("$P", {"P": "[80,$P]"})


def test_large_list_is_merged_and_searched() -> None:
    nets = ",".join(f"10.{i // 256}.{i % 256}.0/24" for i in range(0, 4000, 2))
    s = parse_addresses(f"[{nets}]")
    assert _has(f"[{nets}]", "10.0.2.7") is True
    assert _has(f"[{nets}]", "10.0.3.7") is False
    assert s.v4.starts[0] == int(ipaddress.ip_address("10.0.0.0"))
    assert len(s.v4.starts) == 2000


HOME_WITH_HOLE = {"HOME_NET": "[10.0.0.0/8,!10.1.0.0/16]", "EXTERNAL_NET": "!$HOME_NET"}


@pytest.mark.parametrize(
    ("expr", "addr", "expected"),
    [
        # A negated list is the complement of the whole list, exclusions included.
        ("![10.0.0.0/8,!10.1.0.0/16]", "10.1.0.5", True),
        ("![10.0.0.0/8,!10.1.0.0/16]", "10.2.0.5", False),
        ("![10.0.0.0/8,!10.1.0.0/16]", "8.8.8.8", True),
        ("![10.0.0.0/8,!10.1.0.0/16]", "2001:db8::1", True),
        ("$EXTERNAL_NET", "10.1.2.3", True),  # the hole in HOME_NET is external
        ("$EXTERNAL_NET", "10.9.9.9", False),
        ("$EXTERNAL_NET", "192.0.2.1", True),
        ("[$HOME_NET,!10.2.0.0/16]", "10.2.0.1", False),
        ("[$HOME_NET,!10.2.0.0/16]", "10.3.0.1", True),
        ("[$HOME_NET,!10.2.0.0/16]", "10.1.0.1", False),
        ("[[10.0.0.0/8,!10.1.0.0/16],10.1.1.0/24]", "10.1.1.9", True),
        ("[[10.0.0.0/8,!10.1.0.0/16],10.1.1.0/24]", "10.1.2.9", False),
    ],
)
def test_negation_is_set_complement(expr: str, addr: str, expected: bool) -> None:
    s = parse_addresses(expr, HOME_WITH_HOLE)
    ip = ipaddress.ip_address(addr)
    assert s.contains(ip.version, int(ip)) is expected


@pytest.mark.parametrize("expr", ["!any", "[10.0.0.0/8,!10.0.0.0/8]", "![any]"])
def test_expressions_that_match_nothing_are_empty(expr: str) -> None:
    assert parse_addresses(expr).is_empty


def test_port_list_minus_range() -> None:
    p = parse_ports("[1:1024,!100:200]")
    assert [p.contains(x) for x in (1, 99, 100, 200, 201, 1024, 1025)] == [
        True,
        True,
        False,
        False,
        True,
        True,
        False,
    ]
    assert parse_ports("[80,!80]").is_empty


# -- address ranges (a-b), Suricata's DetectAddressParseString --------------------------------


@pytest.mark.parametrize(
    ("text", "addr", "expected"),
    [
        ("10.0.0.5-10.0.0.9", "10.0.0.5", True),
        ("10.0.0.5-10.0.0.9", "10.0.0.9", True),
        ("10.0.0.5-10.0.0.9", "10.0.0.7", True),
        ("10.0.0.5-10.0.0.9", "10.0.0.4", False),
        ("10.0.0.5-10.0.0.9", "10.0.0.10", False),
        ("10.0.0.5-10.0.0.9", "::a00:7", False),  # the same integer in the other family
        ("10.0.0.5-10.0.0.5", "10.0.0.5", True),  # a == b is one address
        ("10.0.0.5-10.0.0.5", "10.0.0.6", False),
        ("1.2.3.255-1.2.4.1", "1.2.4.0", True),  # across an octet boundary
        ("0.0.0.0-255.255.255.255", "203.0.113.9", True),
        ("2001:db8::1-2001:db8::ff", "2001:db8::80", True),
        ("2001:db8::1-2001:db8::ff", "2001:db8::100", False),
        ("2001:db8::1-2001:db8::ff", "2001:db8::", False),
        ("2001:db8::1-2001:db8::ff", "0.0.0.128", False),
        # in lists, negated, with variables
        ("[10.0.0.0/24,!10.0.0.10-10.0.0.20]", "10.0.0.15", False),
        ("[10.0.0.0/24,!10.0.0.10-10.0.0.20]", "10.0.0.21", True),
        ("!10.0.0.10-10.0.0.20", "10.0.0.9", True),
        ("!10.0.0.10-10.0.0.20", "10.0.0.10", False),
        ("[1.1.1.1-1.1.1.3,2001:db8::1-2001:db8::2]", "2001:db8::2", True),
        ("[1.1.1.1-1.1.1.3,2001:db8::1-2001:db8::2]", "1.1.1.4", False),
        # dotted masks are CIDR blocks
        ("10.1.2.3/255.255.0.0", "10.1.200.1", True),
        ("10.1.2.3/255.255.0.0", "10.2.0.1", False),
    ],
)
def test_address_ranges(text: str, addr: str, expected: bool) -> None:
    assert _has(text, addr) is expected


def test_address_range_in_a_variable() -> None:
    variables = {"POOL": "192.168.1.100-192.168.1.199", "NET": "[$POOL,!192.168.1.150]"}
    assert _has("$NET", "192.168.1.120", variables) is True
    assert _has("$NET", "192.168.1.150", variables) is False
    assert _has("!$POOL", "192.168.1.99", variables) is True


def test_adjacent_ranges_merge() -> None:
    s = parse_addresses("[10.0.0.1-10.0.0.5,10.0.0.6-10.0.0.9,10.0.0.3-10.0.0.4]")
    assert (s.v4.starts, s.v4.ends) == (
        (int(ipaddress.ip_address("10.0.0.1")),),
        (int(ipaddress.ip_address("10.0.0.9")),),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.9-10.0.0.1", "is reversed"),
        ("2001:db8::ff-2001:db8::1", "is reversed"),
        ("10.0.0.1-2001:db8::1", "mixes IPv4 and IPv6"),
        ("10.0.0.1-", "is not an address range"),
        ("-10.0.0.1", "is not an address range"),
        ("10.0.0.1-10.0.0.300", "is not an address range"),
        ("10.0.0.1-10.0.0.5-10.0.0.9", "is not an address range"),
        ("10.0.0.0/24-10.0.1.0/24", "is not an address range"),
        ("10.0.0.0/255.0.255.0", "is not an IP address or network"),  # not a CIDR-compatible mask
    ],
)
def test_address_range_errors(text: str, message: str) -> None:
    with pytest.raises(SetSyntaxError, match=message):
        parse_addresses(text)


@pytest.mark.parametrize("expr", ["[10.0.0.1-10.0.0.9,!10.0.0.0/24]", "![0.0.0.0-255.255.255.255,::/0]"])
def test_ranges_that_leave_nothing(expr: str) -> None:
    assert parse_addresses(expr).is_empty
