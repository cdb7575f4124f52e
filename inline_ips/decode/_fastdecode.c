/*
 * inline_ips.decode._fastdecode -- a compiled twin of inline_ips.decode.decode_py.
 *
 * decode(raw, ts) returns an inline_ips.packet.Packet whose every slot equals
 * what the pure-Python decoder (inline_ips/decode/__init__.py, ipv4.py,
 * ipv6.py, tcp.py, udp.py, icmp.py) produces for the same input. The Python
 * code is the specification; this file mirrors it branch for branch, and
 * tests/decode/test_fastdecode.py compares the two on every field.
 *
 * How the Packet is built: setup(Packet, Packet(b"", 0.0), DECODE_ERRORS)
 * checks that Packet is a plain __slots__ class with exactly the 34 object
 * slots listed below (member descriptors of type T_OBJECT_EX, distinct,
 * aligned offsets that fill tp_basicsize, no __dict__/__weakref__), records
 * each slot's offset, keeps the template's values as the defaults, and keeps
 * the DECODE_ERRORS strings (checking each against the literal this file
 * expects). decode() allocates with tp_alloc (bypassing __init__), fills every
 * slot it decoded with a new object and every other slot with the template's
 * value. Any mismatch at setup raises, and the Python side falls back to the
 * pure decoder; decode() before a successful setup raises RuntimeError.
 *
 * Int slots other than the addresses take values below 65536 from a lazily
 * filled cache of int objects (see make_int); ints are immutable, so sharing
 * them is invisible.
 *
 * Hostile input: every read is preceded by a bounds check against the buffer
 * length (or the datagram end, which is never beyond it); offsets are
 * Py_ssize_t and never overflow (each is at most the buffer length plus a
 * small constant). Allocation per decode: the Packet, its ints of 65536 and
 * above (sequence numbers, addresses), and at most two bytes objects (payload,
 * trimmed raw) no larger than the input; plus the int cache's bounded,
 * one-off growth.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#ifndef Py_T_OBJECT_EX /* before 3.12 these live in structmember.h */
#include "structmember.h"
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif

/* ---- Packet slots, in the order of Packet.__slots__ -------------------- */

enum {
    F_DNS, F_DPORT, F_DST, F_ERROR, F_FLOW_LABEL, F_FRAG, F_FRAG_OFFSET, F_HTTP,
    F_ICMP_CODE, F_ICMP_ID, F_ICMP_SEQ, F_ICMP_TYPE, F_IP_ID, F_IP_LEN, F_IP_VERSION,
    F_L4_OFFSET, F_MORE_FRAGS, F_PAYLOAD, F_PAYLOAD_OFFSET, F_PROTO, F_RAW, F_SPORT,
    F_SRC, F_TCP_ACK, F_TCP_FLAGS, F_TCP_MSS, F_TCP_SEQ, F_TCP_URP, F_TCP_WIN,
    F_TLS_SNI, F_TOS, F_TS, F_TTL, F_UDP_LEN,
    NF
};

static const char *const field_names[NF] = {
    "dns", "dport", "dst", "error", "flow_label", "frag", "frag_offset", "http",
    "icmp_code", "icmp_id", "icmp_seq", "icmp_type", "ip_id", "ip_len", "ip_version",
    "l4_offset", "more_frags", "payload", "payload_offset", "proto", "raw", "sport",
    "src", "tcp_ack", "tcp_flags", "tcp_mss", "tcp_seq", "tcp_urp", "tcp_win",
    "tls_sni", "tos", "ts", "ttl", "udp_len",
};

/* ---- Decode errors, in the order of decode.DECODE_ERRORS ---------------- */

enum {
    E_EMPTY, E_VERSION_UNKNOWN,
    E_IPV4_TRUNCATED, E_IPV4_BAD_IHL, E_IPV4_BAD_TOTAL_LENGTH, E_IPV4_FRAG_TOO_BIG,
    E_IPV6_TRUNCATED, E_IPV6_JUMBOGRAM, E_IPV6_EXT_TRUNCATED, E_IPV6_TOO_MANY_EXT,
    E_TCP_TRUNCATED, E_TCP_BAD_OFFSET, E_TCP_BAD_OPTION,
    E_UDP_TRUNCATED, E_UDP_BAD_LENGTH,
    E_ICMP_TRUNCATED, E_ICMPV6_TRUNCATED,
    E_INTERNAL, /* checked at setup, never produced */
    NERR
};

static const char *const error_names[NERR] = {
    "empty", "ip_version_unknown",
    "ipv4_truncated", "ipv4_bad_ihl", "ipv4_bad_total_length", "ipv4_frag_too_big",
    "ipv6_truncated", "ipv6_jumbogram", "ipv6_ext_truncated", "ipv6_too_many_ext_headers",
    "tcp_truncated", "tcp_bad_offset", "tcp_bad_option",
    "udp_truncated", "udp_bad_length",
    "icmp_truncated", "icmpv6_truncated",
    "internal_error",
};

/* ---- Module state (set by setup) ---------------------------------------- */

static PyTypeObject *pkt_type = NULL;
static Py_ssize_t slot_offset[NF];
static PyObject *slot_default[NF];
static PyObject *error_str[NERR];

/* ---- The decoded values, before they become Python objects -------------- */

typedef struct {
    uint64_t set;                 /* bit f: slot f was assigned */
    long long iv[NF];             /* integer value of an assigned int slot */
    int err;                      /* index into error_str; -1 while error is None */
    const unsigned char *addr6;   /* IPv6: src at addr6, dst at addr6 + 16 */
    Py_ssize_t rawlen;            /* pkt.raw is raw[:rawlen] */
    Py_ssize_t pl_start, pl_end;  /* pkt.payload is raw[pl_start:pl_end] */
} Dec;

#define BIT(f) (UINT64_C(1) << (f))
#define PUT(d, f, v) ((d)->iv[(f)] = (long long)(v), (d)->set |= BIT(f))
#define IS_SET(d, f) (((d)->set & BIT(f)) != 0)

static inline void
set_error(Dec *d, int e)
{
    d->err = e;
    d->set |= BIT(F_ERROR);
}

/* The Python code's "if pkt.error is None: pkt.error = X". */
static inline void
set_error_if_none(Dec *d, int e)
{
    if (d->err < 0)
        set_error(d, e);
}

/* payload = raw[start:end] with Python's slice clamping (start, end >= 0). */
static inline void
set_payload(Dec *d, Py_ssize_t start, Py_ssize_t end)
{
    if (end > d->rawlen)
        end = d->rawlen;
    if (start > end)
        start = end;
    d->pl_start = start;
    d->pl_end = end;
    d->set |= BIT(F_PAYLOAD);
}

static inline unsigned int
be16(const unsigned char *p)
{
    return ((unsigned int)p[0] << 8) | (unsigned int)p[1];
}

static inline unsigned long
be32(const unsigned char *p)
{
    return ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16) |
           ((unsigned long)p[2] << 8) | (unsigned long)p[3];
}

/* ---- ipv4.py: decode_ipv4 ------------------------------------------------ */

static int
decode_ipv4(Dec *d, const unsigned char *b, Py_ssize_t n)
{
    if (n < 20) {
        set_error(d, E_IPV4_TRUNCATED);
        return 0;
    }
    unsigned int vihl = b[0];
    Py_ssize_t total = be16(b + 2);
    unsigned int frag = be16(b + 6);
    PUT(d, F_TOS, b[1]);
    PUT(d, F_IP_LEN, total);
    PUT(d, F_IP_ID, be16(b + 4));
    PUT(d, F_TTL, b[8]);
    PUT(d, F_PROTO, b[9]);
    PUT(d, F_SRC, be32(b + 12));
    PUT(d, F_DST, be32(b + 16));
    Py_ssize_t hlen = (Py_ssize_t)(vihl & 0x0F) << 2;
    if (hlen < 20) {
        set_error(d, E_IPV4_BAD_IHL);
        return 0;
    }
    if (total < hlen) {
        set_error(d, E_IPV4_BAD_TOTAL_LENGTH);
        return 0;
    }
    if (hlen > n) {
        set_error(d, E_IPV4_TRUNCATED);
        return 0;
    }
    PUT(d, F_L4_OFFSET, hlen);
    if (total < n) {
        d->rawlen = total; /* Ethernet padding is not part of the datagram */
        d->set |= BIT(F_RAW);
    }
    else if (total > n) {
        set_error(d, E_IPV4_TRUNCATED);
    }
    if (frag & 0x3FFF) {
        Py_ssize_t offset = (Py_ssize_t)(frag & 0x1FFF) << 3;
        PUT(d, F_FRAG, 1);
        PUT(d, F_FRAG_OFFSET, offset);
        PUT(d, F_MORE_FRAGS, (frag & 0x2000) != 0);
        if (offset) {
            if (offset + total - hlen > 65535)
                set_error_if_none(d, E_IPV4_FRAG_TOO_BIG);
            return 0;
        }
    }
    return 1;
}

/* ---- ipv6.py: decode_ipv6 ------------------------------------------------ */

static inline int
is_ext_header(unsigned int nh)
{
    switch (nh) {
    case 0: case 43: case 44: case 51: case 60: case 135: case 139: case 140:
        return 1;
    default:
        return 0;
    }
}

static int
decode_ipv6(Dec *d, const unsigned char *b, Py_ssize_t n)
{
    if (n < 40) {
        set_error(d, E_IPV6_TRUNCATED);
        return 0;
    }
    unsigned long word = be32(b);
    Py_ssize_t plen = be16(b + 4);
    unsigned int nh = b[6];
    PUT(d, F_TOS, (word >> 20) & 0xFF);
    PUT(d, F_FLOW_LABEL, word & 0xFFFFF);
    PUT(d, F_TTL, b[7]);
    d->addr6 = b + 8;
    d->set |= BIT(F_SRC) | BIT(F_DST);
    Py_ssize_t end = 40 + plen;
    PUT(d, F_IP_LEN, end);
    if (end < n) {
        if (plen == 0) {
            set_error(d, E_IPV6_JUMBOGRAM);
            end = n;
        }
        else {
            d->rawlen = end; /* Ethernet padding is not part of the datagram */
            d->set |= BIT(F_RAW);
        }
    }
    else if (end > n) {
        set_error(d, E_IPV6_TRUNCATED);
        end = n;
    }
    /* From here on every read is below end, and end <= n. */
    Py_ssize_t off = 40;
    int count = 0;
    while (is_ext_header(nh)) {
        if (count == 8) {
            PUT(d, F_PROTO, nh);
            PUT(d, F_L4_OFFSET, off);
            set_error_if_none(d, E_IPV6_TOO_MANY_EXT);
            return 0;
        }
        count++;
        if (nh == 44) {
            if (off + 8 > end)
                goto ext_truncated;
            unsigned int fo = be16(b + off + 2);
            unsigned long ident = be32(b + off + 4);
            nh = b[off];
            off += 8;
            unsigned int offset = fo & 0xFFF8;
            if (offset || (fo & 1)) {
                PUT(d, F_FRAG, 1);
                PUT(d, F_FRAG_OFFSET, offset);
                PUT(d, F_MORE_FRAGS, fo & 1);
                PUT(d, F_IP_ID, ident);
                if (offset) {
                    PUT(d, F_PROTO, nh);
                    PUT(d, F_L4_OFFSET, off);
                    return 0;
                }
            }
            continue;
        }
        if (off + 2 > end)
            goto ext_truncated;
        Py_ssize_t hlen = nh == 51 ? ((Py_ssize_t)b[off + 1] + 2) << 2
                                   : ((Py_ssize_t)b[off + 1] + 1) << 3;
        if (off + hlen > end)
            goto ext_truncated;
        nh = b[off];
        off += hlen;
    }
    PUT(d, F_PROTO, nh);
    PUT(d, F_L4_OFFSET, off);
    return nh != 50 && nh != 59;

ext_truncated:
    PUT(d, F_PROTO, nh);
    PUT(d, F_L4_OFFSET, off);
    set_error_if_none(d, E_IPV6_EXT_TRUNCATED);
    return 0;
}

/* ---- tcp.py: decode_tcp, _options ---------------------------------------- */

static void
decode_tcp(Dec *d, const unsigned char *b, Py_ssize_t n, Py_ssize_t off)
{
    if (n - off < 20) {
        if (n - off >= 4) {
            PUT(d, F_SPORT, be16(b + off));
            PUT(d, F_DPORT, be16(b + off + 2));
        }
        set_error_if_none(d, E_TCP_TRUNCATED);
        return;
    }
    const unsigned char *h = b + off;
    PUT(d, F_SPORT, be16(h));
    PUT(d, F_DPORT, be16(h + 2));
    PUT(d, F_TCP_SEQ, be32(h + 4));
    PUT(d, F_TCP_ACK, be32(h + 8));
    PUT(d, F_TCP_FLAGS, h[13]);
    PUT(d, F_TCP_WIN, be16(h + 14));
    PUT(d, F_TCP_URP, be16(h + 18));
    Py_ssize_t hlen = (Py_ssize_t)(h[12] >> 4) << 2;
    if (hlen < 20 || off + hlen > n) {
        set_error_if_none(d, E_TCP_BAD_OFFSET);
        return;
    }
    Py_ssize_t start = off + hlen;
    PUT(d, F_PAYLOAD_OFFSET, start);
    set_payload(d, start, n);
    if (hlen == 20 || (hlen == 32 && be32(h + 20) == 0x0101080AUL))
        return;
    /* Options in [off + 20, start); every iteration advances i. */
    Py_ssize_t i = off + 20, end = start;
    while (i < end) {
        unsigned int kind = b[i];
        if (kind <= 1) {
            if (kind == 0)
                return;
            i++;
            continue;
        }
        if (i + 1 == end)
            goto bad_option;
        Py_ssize_t length = b[i + 1];
        if (length < 2 || i + length > end)
            goto bad_option;
        if (kind == 2) {
            if (length != 4)
                goto bad_option;
            PUT(d, F_TCP_MSS, be16(b + i + 2));
        }
        i += length;
    }
    return;

bad_option:
    set_error_if_none(d, E_TCP_BAD_OPTION);
}

/* ---- udp.py: decode_udp -------------------------------------------------- */

static void
decode_udp(Dec *d, const unsigned char *b, Py_ssize_t n, Py_ssize_t off)
{
    Py_ssize_t avail = n - off;
    if (avail < 8) {
        if (avail >= 4) {
            PUT(d, F_SPORT, be16(b + off));
            PUT(d, F_DPORT, be16(b + off + 2));
        }
        set_error_if_none(d, E_UDP_TRUNCATED);
        return;
    }
    Py_ssize_t length = be16(b + off + 4);
    PUT(d, F_SPORT, be16(b + off));
    PUT(d, F_DPORT, be16(b + off + 2));
    PUT(d, F_UDP_LEN, length);
    if (length < 8) {
        set_error_if_none(d, E_UDP_BAD_LENGTH);
        return;
    }
    Py_ssize_t start = off + 8;
    PUT(d, F_PAYLOAD_OFFSET, start);
    if (length < avail) {
        set_payload(d, start, off + length);
        return;
    }
    set_payload(d, start, n);
    /* pkt.frag is only ever assigned FRAG_PIECE (1); the default is FRAG_NONE. */
    if (length > avail && !IS_SET(d, F_FRAG))
        set_error_if_none(d, E_UDP_BAD_LENGTH);
}

/* ---- icmp.py: decode_icmp / decode_icmpv6 -------------------------------- */

static void
decode_icmp(Dec *d, const unsigned char *b, Py_ssize_t n, Py_ssize_t off, int v6)
{
    Py_ssize_t avail = n - off;
    if (avail < 8) {
        if (avail >= 2) {
            PUT(d, F_ICMP_TYPE, b[off]);
            PUT(d, F_ICMP_CODE, b[off + 1]);
        }
        set_error_if_none(d, v6 ? E_ICMPV6_TRUNCATED : E_ICMP_TRUNCATED);
        return;
    }
    unsigned int itype = b[off];
    PUT(d, F_ICMP_TYPE, itype);
    PUT(d, F_ICMP_CODE, b[off + 1]);
    if (v6 ? (itype == 128 || itype == 129) : (itype == 8 || itype == 0)) {
        PUT(d, F_ICMP_ID, be16(b + off + 4));
        PUT(d, F_ICMP_SEQ, be16(b + off + 6));
    }
    Py_ssize_t start = off + 8;
    PUT(d, F_PAYLOAD_OFFSET, start);
    set_payload(d, start, n);
}

/* ---- __init__.py: decode ------------------------------------------------- */

static void
decode_all(Dec *d, const unsigned char *b, Py_ssize_t n)
{
    if (n == 0) {
        set_error(d, E_EMPTY);
        return;
    }
    unsigned int version = b[0] >> 4;
    if (version == 4) {
        PUT(d, F_IP_VERSION, 4);
        if (!decode_ipv4(d, b, n))
            return;
    }
    else if (version == 6) {
        PUT(d, F_IP_VERSION, 6);
        if (!decode_ipv6(d, b, n))
            return;
    }
    else {
        set_error(d, E_VERSION_UNKNOWN);
        return;
    }
    /* Both IP decoders assign proto and l4_offset before returning true;
       L4 decodes pkt.raw, i.e. the first rawlen bytes. */
    long long proto = d->iv[F_PROTO];
    Py_ssize_t off = (Py_ssize_t)d->iv[F_L4_OFFSET];
    Py_ssize_t len = d->rawlen;
    switch (proto) {
    case 6:
        decode_tcp(d, b, len, off);
        break;
    case 17:
        decode_udp(d, b, len, off);
        break;
    case 1:
        decode_icmp(d, b, len, off, 0);
        break;
    case 58:
        decode_icmp(d, b, len, off, 1);
        break;
    default:
        PUT(d, F_PAYLOAD_OFFSET, off);
        set_payload(d, off, len);
        break;
    }
}

/* Most int slots hold 16-bit values (ports, lengths, offsets, window, ids): keep each
   such int object once made, so a decode allocates only the 32-bit and 128-bit ones.
   Bounded: at most 65536 ints (about 2 MB with the table), whatever the traffic. */
#ifndef FASTDECODE_INT_CACHE
#define FASTDECODE_INT_CACHE 1
#endif

#if FASTDECODE_INT_CACHE
static PyObject *u16_cache[65536];
#endif

static inline PyObject *
make_int(long long v)
{
#if FASTDECODE_INT_CACHE
    if (v >= 0 && v < 65536) {
        PyObject *o = u16_cache[v];
        if (o == NULL) {
            o = PyLong_FromLongLong(v);
            if (o == NULL)
                return NULL;
            u16_cache[v] = o;
        }
        return Py_NewRef(o);
    }
#endif
    return PyLong_FromLongLong(v);
}

static PyObject *
make_value(const Dec *d, int f, PyObject *raw, PyObject *ts)
{
    switch (f) {
    case F_RAW:
        if (d->rawlen < PyBytes_GET_SIZE(raw))
            return PyBytes_FromStringAndSize(PyBytes_AS_STRING(raw), d->rawlen);
        return Py_NewRef(raw);
    case F_TS:
        return Py_NewRef(ts);
    case F_ERROR:
        return Py_NewRef(error_str[d->err]);
    case F_PAYLOAD:
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(raw) + d->pl_start,
                                         d->pl_end - d->pl_start);
    case F_MORE_FRAGS:
        return Py_NewRef(d->iv[f] ? Py_True : Py_False);
    case F_SRC:
    case F_DST:
        if (d->addr6 != NULL)
            return _PyLong_FromByteArray(d->addr6 + (f == F_DST ? 16 : 0), 16,
                                         /* little_endian */ 0, /* is_signed */ 0);
        return PyLong_FromLongLong(d->iv[f]);
    default:
        return make_int(d->iv[f]);
    }
}

static PyObject *
fd_decode(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "decode() takes exactly 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (pkt_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_fastdecode.setup() has not succeeded");
        return NULL;
    }
    PyObject *raw = args[0], *ts = args[1];
    PyObject *converted = NULL;
    if (!PyBytes_CheckExact(raw)) {
        /* As decode_py: payload slices must be immutable bytes. */
        converted = PyObject_CallOneArg((PyObject *)&PyBytes_Type, raw);
        if (converted == NULL)
            return NULL;
        if (!PyBytes_Check(converted)) {
            Py_DECREF(converted);
            PyErr_SetString(PyExc_TypeError, "bytes() did not return bytes");
            return NULL;
        }
        raw = converted;
    }

    Dec d;
    d.set = BIT(F_RAW) | BIT(F_TS) | BIT(F_IP_LEN);
    d.err = -1;
    d.addr6 = NULL;
    d.rawlen = PyBytes_GET_SIZE(raw);
    d.iv[F_IP_LEN] = d.rawlen;
    d.iv[F_PROTO] = -1;
    d.iv[F_L4_OFFSET] = 0;
    d.pl_start = d.pl_end = 0;
    decode_all(&d, (const unsigned char *)PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw));

    PyObject *pkt = pkt_type->tp_alloc(pkt_type, 0);
    if (pkt == NULL) {
        Py_XDECREF(converted);
        return NULL;
    }
    char *base = (char *)pkt;
    for (int f = 0; f < NF; f++) {
        PyObject *v;
        if (d.set & BIT(f)) {
            v = make_value(&d, f, raw, ts);
            if (v == NULL) {
                /* Slots not yet filled are NULL, which dealloc accepts. */
                Py_DECREF(pkt);
                Py_XDECREF(converted);
                return NULL;
            }
        }
        else {
            v = Py_NewRef(slot_default[f]);
        }
        *(PyObject **)(base + slot_offset[f]) = v;
    }
    Py_XDECREF(converted);
    return pkt;
}

/* ---- setup ---------------------------------------------------------------- */

static int
layout_error(const char *what, const char *name)
{
    PyErr_Format(PyExc_TypeError, "_fastdecode.setup: Packet layout not as expected: %s%s%s", what,
                 name ? ": " : "", name ? name : "");
    return -1;
}

static PyObject *
fd_setup(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *cls_obj, *template, *errors;
    if (!PyArg_ParseTuple(args, "OOO:setup", &cls_obj, &template, &errors))
        return NULL;
    if (!PyType_Check(cls_obj)) {
        layout_error("not a class", NULL);
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)cls_obj;
    const Py_ssize_t word = (Py_ssize_t)sizeof(PyObject *);
    const Py_ssize_t first = (Py_ssize_t)sizeof(PyObject);

    if (cls->tp_base != &PyBaseObject_Type || cls->tp_itemsize != 0 || cls->tp_dictoffset != 0 ||
        cls->tp_weaklistoffset != 0 || cls->tp_alloc == NULL || cls->tp_dict == NULL ||
        cls->tp_basicsize != first + NF * word || !PyType_HasFeature(cls, Py_TPFLAGS_HEAPTYPE)) {
        layout_error("not a plain __slots__ class of the expected size", NULL);
        return NULL;
    }
#ifdef Py_TPFLAGS_MANAGED_DICT
    if (PyType_HasFeature(cls, Py_TPFLAGS_MANAGED_DICT)) {
        layout_error("has a __dict__", NULL);
        return NULL;
    }
#endif

    Py_ssize_t offsets[NF];
    unsigned char seen[NF];
    memset(seen, 0, sizeof(seen));
    for (int f = 0; f < NF; f++) {
        PyObject *descr = PyDict_GetItemString(cls->tp_dict, field_names[f]);
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type) ||
            PyDescr_TYPE(descr) != cls) {
            layout_error("no slot", field_names[f]);
            return NULL;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
        Py_ssize_t o = m->offset;
        if (m->type != Py_T_OBJECT_EX || (m->flags & Py_READONLY) || m->name == NULL ||
            strcmp(m->name, field_names[f]) != 0 || o < first || o > cls->tp_basicsize - word ||
            (o - first) % word != 0 || seen[(o - first) / word]) {
            layout_error("unexpected slot descriptor", field_names[f]);
            return NULL;
        }
        seen[(o - first) / word] = 1;
        offsets[f] = o;
    }
    /* NF distinct aligned offsets in a body of NF words: no other slot exists. */

    if (Py_TYPE(template) != cls) {
        layout_error("template is not an exact Packet", NULL);
        return NULL;
    }
    for (int f = 0; f < NF; f++) {
        if (*(PyObject **)((char *)template + offsets[f]) == NULL) {
            layout_error("template slot unset", field_names[f]);
            return NULL;
        }
    }
    /* The decoder's "error is None" and "frag != FRAG_PIECE" tests assume these defaults. */
    PyObject *err0 = *(PyObject **)((char *)template + offsets[F_ERROR]);
    PyObject *frag0 = *(PyObject **)((char *)template + offsets[F_FRAG]);
    if (err0 != Py_None || !PyLong_CheckExact(frag0) || PyLong_AsLong(frag0) != 0) {
        if (!PyErr_Occurred())
            layout_error("template error/frag defaults are not None/0", NULL);
        return NULL;
    }

    if (!PyTuple_CheckExact(errors) || PyTuple_GET_SIZE(errors) != NERR) {
        PyErr_SetString(PyExc_ValueError, "_fastdecode.setup: DECODE_ERRORS is not the expected tuple");
        return NULL;
    }
    for (int e = 0; e < NERR; e++) {
        PyObject *s = PyTuple_GET_ITEM(errors, e);
        if (!PyUnicode_CheckExact(s) || PyUnicode_CompareWithASCIIString(s, error_names[e]) != 0) {
            PyErr_Format(PyExc_ValueError, "_fastdecode.setup: DECODE_ERRORS[%d] is not %s", e,
                         error_names[e]);
            return NULL;
        }
    }

    /* All checked: install. */
    Py_XSETREF(pkt_type, (PyTypeObject *)Py_NewRef(cls));
    for (int f = 0; f < NF; f++) {
        slot_offset[f] = offsets[f];
        Py_XSETREF(slot_default[f], Py_NewRef(*(PyObject **)((char *)template + offsets[f])));
    }
    for (int e = 0; e < NERR; e++)
        Py_XSETREF(error_str[e], Py_NewRef(PyTuple_GET_ITEM(errors, e)));
    Py_RETURN_NONE;
}

static PyMethodDef fd_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))fd_decode, METH_FASTCALL,
     "decode(raw, ts) -> Packet\n\nThe compiled twin of inline_ips.decode.decode_py."},
    {"setup", fd_setup, METH_VARARGS,
     "setup(packet_class, template, decode_errors) -> None\n\n"
     "Check Packet's slot layout and remember it; raises if it is not as expected."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fd_module = {
    PyModuleDef_HEAD_INIT,
    "inline_ips.decode._fastdecode",
    "Compiled fast path of inline_ips.decode.decode (see inline_ips/decode/__init__.py).",
    -1,
    fd_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fastdecode(void)
{
    return PyModule_Create(&fd_module);
}
