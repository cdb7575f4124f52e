/*
 * inline_ips._fastflow -- the compiled common case of inline_ips.flow.FlowTable.lookup.
 *
 * lookup(state, pkt[, tcp_state]) with state = (flows, move_to_end, min_timeout, slow),
 * as FlowTable.fast_lookup() builds it. For a packet of a flow already in the table,
 * seen within min_timeout seconds (so it cannot have expired), whose update changes no
 * TCP state (not TCP; TCP with tcp_state false; TCP without SYN, RST or FIN that does not
 * complete a handshake), it does what FlowTable.lookup does in Python: moves the flow to
 * the LRU end, counts the packet into the flow's direction, sets established and
 * pkt_established, and returns (flow, to_server). Everything else -- a new flow, one that
 * may have expired, a TCP state change, an object not laid out as setup() found -- is
 * slow(pkt, tcp_state), the Python method, before anything was changed.
 *
 * The Python code (inline_ips/flow.py) is the specification; this file mirrors it
 * branch for branch, and tests/test_fastflow.py drives a table through each on the same
 * traffic and compares every slot of every flow after every packet.
 *
 * How slots are read: setup(Flow, Packet, PROTO_TCP, SYN, ACK, FIN, RST) looks up the
 * member descriptor of each slot used here and keeps its offset; lookup() reads and writes
 * slots by offset only for objects whose type is exactly that class (anything else goes
 * the slow way). Before setup() every call goes the slow way.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_slots.h"
#include <string.h>


enum { P_SRC, P_SPORT, P_DST, P_DPORT, P_IP_VERSION, P_PROTO, P_TS, P_RAW, P_PAYLOAD, P_TCP_FLAGS, NP };
static const char *const pkt_names[NP] = {
    "src", "sport", "dst", "dport", "ip_version", "proto", "ts", "raw", "payload", "tcp_flags",
};

enum {
    F_CLIENT, F_CPORT, F_LAST_TS, F_PKTS, F_BYTES, F_PAYLOAD, F_ESTABLISHED, F_PKT_ESTABLISHED,
    F_CLOSED, F_SYNACK, F_SESSION, NFL
};
static const char *const flow_names[NFL] = {
    "client", "cport", "last_ts", "pkts", "bytes", "payload", "established", "pkt_established",
    "closed", "synack", "session",
};

static PyTypeObject *pkt_type = NULL;
static PyTypeObject *flow_type = NULL;
static Py_ssize_t pkt_off[NP];
static Py_ssize_t flow_off[NFL];
static long proto_tcp, flag_syn, flag_ack, flag_fin, flag_rst;
static PyObject *one = NULL;

/* Replace a slot's value with a new reference to v. */
static inline void
set_slot(PyObject *obj, Py_ssize_t off, PyObject *v)
{
    PyObject *old = SLOT(obj, off);
    SLOT(obj, off) = Py_NewRef(v);
    Py_XDECREF(old);
}

/* The slow way: the Python method, given what we were given. */
static PyObject *
slow_call(PyObject *slow, PyObject *pkt, PyObject *tcp_state)
{
    PyObject *argv[2] = {pkt, tcp_state};
    return PyObject_Vectorcall(slow, argv, 2, NULL);
}

static PyObject *
ff_lookup(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "lookup(state, pkt[, tcp_state])");
        return NULL;
    }
    PyObject *state = args[0], *pkt = args[1];
    PyObject *tcp_state_obj = nargs == 3 ? args[2] : Py_True;
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != 4) {
        PyErr_SetString(PyExc_TypeError, "lookup: state must be (flows, move_to_end, min_timeout, slow)");
        return NULL;
    }
    PyObject *flows = PyTuple_GET_ITEM(state, 0), *move = PyTuple_GET_ITEM(state, 1);
    PyObject *min_timeout = PyTuple_GET_ITEM(state, 2), *slow = PyTuple_GET_ITEM(state, 3);
    if (flow_type == NULL || Py_TYPE(pkt) != pkt_type || !PyDict_Check(flows) ||
        !PyFloat_CheckExact(min_timeout))
        return slow_call(slow, pkt, tcp_state_obj);

    PyObject *p[NP];
    for (int i = 0; i < NP; i++) {
        p[i] = SLOT(pkt, pkt_off[i]);
        if (p[i] == NULL)
            return slow_call(slow, pkt, tcp_state_obj);
    }
    PyObject *src = p[P_SRC], *sport = p[P_SPORT], *dst = p[P_DST], *dport = p[P_DPORT];
    if (!PyLong_CheckExact(p[P_PROTO]) || !PyFloat_CheckExact(p[P_TS]))
        return slow_call(slow, pkt, tcp_state_obj);

    /* The canonical key, as FlowTable.lookup builds it. */
    int swap = PyObject_RichCompareBool(src, dst, Py_GT);
    if (swap < 0)
        return NULL;
    if (!swap) {
        int eq = PyObject_RichCompareBool(src, dst, Py_EQ);
        if (eq < 0)
            return NULL;
        if (eq && (swap = PyObject_RichCompareBool(sport, dport, Py_GT)) < 0)
            return NULL;
    }
    PyObject *key = swap ? PyTuple_Pack(6, p[P_IP_VERSION], p[P_PROTO], dst, dport, src, sport)
                         : PyTuple_Pack(6, p[P_IP_VERSION], p[P_PROTO], src, sport, dst, dport);
    if (key == NULL)
        return NULL;
    PyObject *result = NULL;
    PyObject *flow = PyDict_GetItemWithError(flows, key);
    if (flow == NULL) {
        if (PyErr_Occurred())
            goto done;
        goto slow;
    }
    Py_INCREF(flow); /* ours until done, whatever move_to_end or a comparison does to the table */
    if (Py_TYPE(flow) != flow_type)
        goto slow;
    PyObject *f[NFL];
    for (int i = 0; i < NFL; i++) {
        f[i] = SLOT(flow, flow_off[i]);
        if (f[i] == NULL)
            goto slow;
    }
    /* Seen within the shortest timeout: it cannot have expired (the Python test, first half). */
    if (!PyFloat_CheckExact(f[F_LAST_TS]) ||
        PyFloat_AS_DOUBLE(p[P_TS]) - PyFloat_AS_DOUBLE(f[F_LAST_TS]) > PyFloat_AS_DOUBLE(min_timeout))
        goto slow;
    PyObject *pkts = f[F_PKTS], *bytes = f[F_BYTES], *payload = f[F_PAYLOAD];
    if (!PyList_CheckExact(pkts) || PyList_GET_SIZE(pkts) != 2 || !PyList_CheckExact(bytes) ||
        PyList_GET_SIZE(bytes) != 2 || !PyList_CheckExact(payload) || PyList_GET_SIZE(payload) != 2)
        goto slow;

    /* to_server = src == client and sport == cport and (dst != client or dport != cport or src != dst) */
    PyObject *client = f[F_CLIENT], *cport = f[F_CPORT];
    int to_server = PyObject_RichCompareBool(src, client, Py_EQ);
    if (to_server > 0)
        to_server = PyObject_RichCompareBool(sport, cport, Py_EQ);
    if (to_server > 0) {
        to_server = PyObject_RichCompareBool(dst, client, Py_NE);
        if (to_server == 0)
            to_server = PyObject_RichCompareBool(dport, cport, Py_NE);
        if (to_server == 0)
            to_server = PyObject_RichCompareBool(src, dst, Py_NE);
    }
    if (to_server < 0)
        goto done;
    const Py_ssize_t d = to_server ? 0 : 1;

    long proto = PyLong_AsLong(p[P_PROTO]);
    if (proto == -1 && PyErr_Occurred())
        goto done;
    int tcp_state = PyObject_IsTrue(tcp_state_obj);
    if (tcp_state < 0)
        goto done;
    const int is_tcp = proto == proto_tcp;
    int established = PyObject_IsTrue(f[F_ESTABLISHED]);
    if (established < 0)
        goto done;
    if (is_tcp && tcp_state) {
        /* Only updates that change no TCP state are done here. */
        if (!PyLong_CheckExact(p[P_TCP_FLAGS]))
            goto slow;
        long flags = PyLong_AsLong(p[P_TCP_FLAGS]);
        if (flags == -1 && PyErr_Occurred())
            goto done;
        if (flags & (flag_syn | flag_rst | flag_fin))
            goto slow;
        if ((flags & flag_ack) && to_server && !established) {
            int synack = PyObject_IsTrue(f[F_SYNACK]);
            int session = synack > 0 ? PyObject_IsTrue(f[F_SESSION]) : synack;
            if (session < 0)
                goto done;
            if (session)
                goto slow; /* the ACK that completes the handshake */
        }
        /* The first packet of a flow opens its session: not this one, the flow has counted some. */
        PyObject *p0 = PyList_GET_ITEM(pkts, 0), *p1 = PyList_GET_ITEM(pkts, 1);
        int any0 = PyObject_IsTrue(p0), any1 = any0 > 0 ? 1 : PyObject_IsTrue(p1);
        if (any0 < 0 || any1 < 0)
            goto done;
        if (!any1 || !PyLong_CheckExact(p0) || !PyLong_CheckExact(p1))
            goto slow;
    }

    /* Everything that can fail first; then the changes, which cannot. */
    Py_ssize_t raw_len = PyObject_Size(p[P_RAW]);
    if (raw_len < 0)
        goto done;
    Py_ssize_t payload_len = PyObject_Size(p[P_PAYLOAD]);
    if (payload_len < 0)
        goto done;
    PyObject *moved = PyObject_CallOneArg(move, key);
    if (moved == NULL)
        goto done;
    Py_DECREF(moved);
    PyObject *np = NULL, *nb = NULL, *npl = NULL, *len_obj = NULL;
    np = PyNumber_Add(PyList_GET_ITEM(pkts, d), one);
    if (np != NULL && (len_obj = PyLong_FromSsize_t(raw_len)) != NULL)
        nb = PyNumber_Add(PyList_GET_ITEM(bytes, d), len_obj);
    Py_XDECREF(len_obj);
    len_obj = NULL;
    if (nb != NULL && (len_obj = PyLong_FromSsize_t(payload_len)) != NULL)
        npl = PyNumber_Add(PyList_GET_ITEM(payload, d), len_obj);
    Py_XDECREF(len_obj);
    if (npl == NULL) {
        Py_XDECREF(np);
        Py_XDECREF(nb);
        goto done;
    }
    set_slot(flow, flow_off[F_LAST_TS], p[P_TS]);
    PyList_SetItem(pkts, d, np); /* steals np, releases the old count */
    PyList_SetItem(bytes, d, nb);
    PyList_SetItem(payload, d, npl);
    if (!is_tcp) {
        /* Other protocols are established once both sides spoke. */
        int both = PyObject_IsTrue(PyList_GET_ITEM(pkts, 1));
        if (both > 0)
            both = PyObject_IsTrue(PyList_GET_ITEM(pkts, 0));
        if (both < 0)
            goto done;
        if (both)
            set_slot(flow, flow_off[F_ESTABLISHED], Py_True);
        set_slot(flow, flow_off[F_PKT_ESTABLISHED], SLOT(flow, flow_off[F_ESTABLISHED]));
    }
    else {
        /* pkt_established = established and not closed (Python's "and": the falsy operand itself) */
        PyObject *v = f[F_ESTABLISHED];
        if (established) {
            int closed = PyObject_IsTrue(f[F_CLOSED]);
            if (closed < 0)
                goto done;
            v = closed ? Py_False : Py_True;
        }
        set_slot(flow, flow_off[F_PKT_ESTABLISHED], v);
    }
    result = PyTuple_Pack(2, flow, to_server ? Py_True : Py_False);
    goto done;

slow:
    result = slow_call(slow, pkt, tcp_state_obj);
done:
    Py_XDECREF(flow);
    Py_DECREF(key);
    return result;
}

static PyObject *
ff_setup(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *flow_cls, *pkt_cls;
    long tcp, syn, ack, fin, rst;
    if (!PyArg_ParseTuple(args, "O!O!lllll:setup", &PyType_Type, &flow_cls, &PyType_Type, &pkt_cls, &tcp, &syn,
                          &ack, &fin, &rst))
        return NULL;
    Py_ssize_t foff[NFL], poff[NP];
    if (slot_offsets((PyTypeObject *)flow_cls, flow_names, NFL, foff, "_fastflow.setup") < 0 ||
        slot_offsets((PyTypeObject *)pkt_cls, pkt_names, NP, poff, "_fastflow.setup") < 0)
        return NULL;
    if (one == NULL && (one = PyLong_FromLong(1)) == NULL)
        return NULL;
    memcpy(flow_off, foff, sizeof(foff));
    memcpy(pkt_off, poff, sizeof(poff));
    proto_tcp = tcp;
    flag_syn = syn;
    flag_ack = ack;
    flag_fin = fin;
    flag_rst = rst;
    Py_XSETREF(flow_type, (PyTypeObject *)Py_NewRef(flow_cls));
    Py_XSETREF(pkt_type, (PyTypeObject *)Py_NewRef(pkt_cls));
    Py_RETURN_NONE;
}

static PyMethodDef ff_methods[] = {
    {"lookup", (PyCFunction)(void (*)(void))ff_lookup, METH_FASTCALL,
     "lookup(state, pkt[, tcp_state]) -> (flow, to_server)\n\n"
     "FlowTable.lookup for a known, current flow whose TCP state does not change; else state[3](pkt, tcp_state)."},
    {"setup", ff_setup, METH_VARARGS,
     "setup(Flow, Packet, PROTO_TCP, SYN, ACK, FIN, RST) -> None\n\nFind and remember the slots lookup() uses."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ff_module = {
    PyModuleDef_HEAD_INIT,
    "inline_ips._fastflow",
    "Compiled common case of inline_ips.flow.FlowTable.lookup (see inline_ips/flow.py).",
    -1,
    ff_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fastflow(void)
{
    return PyModule_Create(&ff_module);
}
