/*
 * inline_ips.source._nfqloop -- the NFQUEUE receive loop in C, no library needed.
 *
 * Loop(fd, queue_num, bypass_mark, batch=32, poll_ms=250, spin_us=0) wraps a netlink
 * socket (NETLINK_NETFILTER) that Python has bound to queue `queue_num` and
 * configured (copy mode packet); the socket stays Python's, this file never
 * closes it. Loop.run(handler, accept, bypass, drop, slow, backlog):
 *
 *  - first parses the datagrams in `backlog` (list of bytes: what arrived
 *    while Python configured the queue), then loops: recvmmsg(MSG_DONTWAIT)
 *    up to `batch` datagrams per system call; when none was waiting (or the
 *    last batch came back short), poll() for at most poll_ms first. The GIL
 *    is released around recvmmsg, poll and send.
 *  - busy poll (spin_us > 0): before that poll(), while less than spin_us
 *    microseconds have passed since the last packet arrived, keep trying a
 *    non-blocking receive instead (GIL released). Under steady traffic the
 *    process then never sleeps, so a packet does not wait for the scheduler
 *    to wake it up (tens of microseconds on a VM, far more in the tail);
 *    an idle queue costs nothing, because the spin only follows a packet.
 *    Counted: spins (spin phases), spin_hits (those that found a packet). Verdicts go out with send()
 *    without an address: portid 0, the kernel, for an unconnected netlink
 *    socket (so a socketpair can stand in for the kernel in tests).
 *  - each datagram may hold several netlink messages. NFQNL_MSG_PACKET for our
 *    queue (res_id): NFQA_PACKET_HDR gives the packet id, NFQA_MARK the mark,
 *    NFQA_PAYLOAD the IP datagram. NLMSG_ERROR with a non-zero error counts
 *    verdict_errors (the kernel refused a verdict); other types are skipped.
 *    Every length is checked against the message (and the message against
 *    the datagram) before it is read; a malformed message counts
 *    bad_messages and is skipped (when its own length cannot be trusted,
 *    the rest of the datagram with it).
 *  - decision = handler(payload_bytes, time.time()-like float). By identity:
 *    `accept` -> deferred into one NFQNL_MSG_VERDICT_BATCH (accepts every
 *    queued id <= the last accepted one); `bypass` -> NF_ACCEPT with NFQA_MARK
 *    = packet mark | bypass_mark; `drop` -> NF_DROP; anything else ->
 *    slow(decision, payload) returning (verdict 0|1, mark bits to OR into the
 *    packet mark or None, new payload or None); a plain accept from slow is
 *    deferred like `accept`.
 *  - order: before any single verdict is added to the send buffer, the
 *    pending batch accept is added first, so the kernel (which handles the
 *    messages of one datagram in order) reinjects packets in queue order.
 *    One send per receive batch, and earlier when the buffer would overflow.
 *  - fail open: an Exception from the handler counts handler_errors, from
 *    slow (or a malformed result of slow) verdict_errors; the packet is
 *    accepted unchanged. A BaseException that is not an Exception
 *    (KeyboardInterrupt, SystemExit), from the handler, slow, or
 *    PyErr_CheckSignals(): the packet is accepted, so is every packet left
 *    in the datagrams already received (without calling the handler), the
 *    verdicts are sent, and run() raises it.
 *  - stop() (any thread, a signal handler) sets an atomic flag, looked at
 *    after every receive batch and every poll timeout: run() returns within
 *    poll_ms even under sustained load. PyErr_CheckSignals() runs after every
 *    batch, poll and EINTR, so Python signal handlers run.
 *  - recv errors: EINTR, EAGAIN: go on; ENOBUFS (the kernel could not queue a
 *    message to us; a fail-open queue accepted that packet): counted
 *    (enobufs), go on; anything else: OSError. Send errors: ENOBUFS, EAGAIN
 *    and EINTR are retried a few times; then each verdict message of the
 *    failed send counts verdict_errors.
 *
 * stats() -> dict of the counters (cumulative over runs of this Loop).
 * Only Python.h, libc and the kernel's uapi headers are used.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>

/* One receive slot: a packet message holds at most 0xFFFF payload bytes
 * (the copy range is 16 bits) plus a few hundred bytes of headers and
 * attributes. */
#define RECV_SLOT (65536 + 8192)
#define MAX_BATCH 1024
#define MAX_SPIN_US 10000
#define SEND_MAX (256 * 1024)
#define SEND_MIN (8 * 1024)
#define SEND_TRIES 4
/* Largest NFQA_PAYLOAD value in a verdict: nla_len is 16 bits. */
#define MAX_VERDICT_PAYLOAD (0xFFFF - NLA_HDRLEN)

#define QUEUE_MSG(t) ((uint16_t)((NFNL_SUBSYS_QUEUE << 8) | (t)))

enum {
    C_PACKETS,
    C_ACCEPTED,
    C_DROPPED,
    C_BYPASS_MARKED,
    C_HANDLER_ERRORS,
    C_SLOW_CALLS,
    C_VERDICT_ERRORS,
    C_ENOBUFS,
    C_BAD_MESSAGES,
    C_RECV_CALLS,
    C_SENDS,
    C_SPINS,
    C_SPIN_HITS,
    NCOUNTERS
};

static const char *const counter_names[NCOUNTERS] = {
    "packets",        "accepted",   "dropped",        "bypass_marked",
    "handler_errors", "slow_calls", "verdict_errors", "enobufs",
    "bad_messages",   "recv_calls", "sends",          "spins",
    "spin_hits",
};

typedef struct {
    PyObject_HEAD
    int fd;
    uint16_t queue_num;
    uint32_t bypass_mark;
    unsigned int batch;
    int poll_ms;
    long spin_ns;
    atomic_int stop_requested;
    int running;
    uint32_t seq;
    unsigned long long counters[NCOUNTERS];

    /* State of one run() (valid while running). */
    PyObject *handler, *accept, *bypass, *drop, *slow; /* borrowed from run()'s arguments */
    unsigned char *sbuf;
    size_t slen, scap;
    unsigned int smsgs;
    int have_pending;
    uint32_t pending_id;
    int draining; /* a BaseException is pending: accept the rest without judging */
} LoopObject;

/* ---- the send buffer ------------------------------------------------------ */

static void send_now(LoopObject *s)
{
    if (s->slen == 0)
        return;
    for (int tries = 0;; tries++) {
        ssize_t r;
        int err = 0;
        /* No address: an unconnected netlink socket sends to portid 0, the kernel (and
         * the tests can stand a socketpair in for the kernel). */
        Py_BEGIN_ALLOW_THREADS
        r = send(s->fd, s->sbuf, s->slen, 0);
        if (r < 0)
            err = errno;
        Py_END_ALLOW_THREADS
        if (r >= 0) {
            s->counters[C_SENDS]++;
            break;
        }
        if ((err == EINTR || err == ENOBUFS || err == EAGAIN || err == EWOULDBLOCK) &&
            tries + 1 < SEND_TRIES)
            continue;
        s->counters[C_VERDICT_ERRORS] += s->smsgs;
        break;
    }
    s->slen = 0;
    s->smsgs = 0;
}

/* Room for `size` more bytes (sending what is buffered if needed); NULL when
 * a message of that size can never be sent in one datagram. */
static unsigned char *reserve(LoopObject *s, size_t size)
{
    if (size > s->scap)
        return NULL;
    if (s->slen + size > s->scap)
        send_now(s);
    unsigned char *p = s->sbuf + s->slen;
    memset(p, 0, size);
    s->slen += size;
    s->smsgs++;
    return p;
}

static void put_attr(unsigned char *p, uint16_t type, const void *value, size_t len)
{
    struct nlattr a;
    a.nla_len = (uint16_t)(NLA_HDRLEN + len);
    a.nla_type = type;
    memcpy(p, &a, sizeof a);
    if (len)
        memcpy(p + NLA_HDRLEN, value, len);
}

/* Append one verdict message; -1 when it is too large to be sent. */
static int put_verdict(LoopObject *s, uint16_t msg, uint32_t id, uint32_t verdict, int has_mark,
                       uint32_t mark, const char *payload, size_t plen)
{
    size_t size = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)) +
                  NLA_ALIGN(NLA_HDRLEN + sizeof(struct nfqnl_msg_verdict_hdr));
    if (has_mark)
        size += NLA_ALIGN(NLA_HDRLEN + sizeof(uint32_t));
    if (payload)
        size += NLA_ALIGN(NLA_HDRLEN + plen);
    unsigned char *p = reserve(s, size);
    if (p == NULL)
        return -1;
    struct nlmsghdr h;
    h.nlmsg_len = (uint32_t)size;
    h.nlmsg_type = QUEUE_MSG(msg);
    h.nlmsg_flags = NLM_F_REQUEST;
    h.nlmsg_seq = ++s->seq;
    h.nlmsg_pid = 0;
    memcpy(p, &h, sizeof h);
    struct nfgenmsg g;
    g.nfgen_family = AF_UNSPEC;
    g.version = NFNETLINK_V0;
    g.res_id = htons(s->queue_num);
    memcpy(p + NLMSG_HDRLEN, &g, sizeof g);
    size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof g);
    struct nfqnl_msg_verdict_hdr v;
    v.verdict = htonl(verdict);
    v.id = htonl(id);
    put_attr(p + off, NFQA_VERDICT_HDR, &v, sizeof v);
    off += NLA_ALIGN(NLA_HDRLEN + sizeof v);
    if (has_mark) {
        uint32_t m = htonl(mark);
        put_attr(p + off, NFQA_MARK, &m, sizeof m);
        off += NLA_ALIGN(NLA_HDRLEN + sizeof m);
    }
    if (payload)
        put_attr(p + off, NFQA_PAYLOAD, payload, plen);
    return 0;
}

/* The pending batch accept goes into the buffer (before any single verdict). */
static void put_pending(LoopObject *s)
{
    if (!s->have_pending)
        return;
    s->have_pending = 0;
    put_verdict(s, NFQNL_MSG_VERDICT_BATCH, s->pending_id, NF_ACCEPT, 0, 0, NULL, 0);
}

static void flush(LoopObject *s)
{
    put_pending(s);
    send_now(s);
}

static void accept_deferred(LoopObject *s, uint32_t id)
{
    s->counters[C_ACCEPTED]++;
    /* Ids only grow (modulo 2^32); keep the newest, so no queued id is left behind. */
    if (!s->have_pending || (int32_t)(id - s->pending_id) > 0)
        s->pending_id = id;
    s->have_pending = 1;
}

static void verdict_now(LoopObject *s, uint32_t id, uint32_t verdict, int has_mark, uint32_t mark,
                        const char *payload, size_t plen)
{
    put_pending(s);
    if (put_verdict(s, NFQNL_MSG_VERDICT, id, verdict, has_mark, mark, payload, plen) < 0) {
        /* Too large for one datagram: the change is lost, the packet passes unchanged. */
        s->counters[C_VERDICT_ERRORS]++;
        put_verdict(s, NFQNL_MSG_VERDICT, id, verdict, has_mark, mark, NULL, 0);
    }
}

/* ---- judging one packet --------------------------------------------------- */

/* An exception is set: an Exception is counted and cleared (0); any other
 * BaseException stays set and the run ends after this batch (-1). */
static int absorb(LoopObject *s, int counter)
{
    if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_Exception)) {
        s->counters[counter]++;
        PyErr_Clear();
        return 0;
    }
    s->draining = 1;
    return -1;
}

/* slow()'s answer to the kernel; 0, or -1 when the answer is malformed (nothing sent). */
static int slow_verdict(LoopObject *s, uint32_t id, uint32_t mark, PyObject *r)
{
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 3)
        return -1;
    PyObject *v = PyTuple_GET_ITEM(r, 0), *m = PyTuple_GET_ITEM(r, 1), *p = PyTuple_GET_ITEM(r, 2);
    if (!PyLong_Check(v))
        return -1;
    long verdict = PyLong_AsLong(v);
    if (verdict != 0 && verdict != 1) {
        PyErr_Clear();
        return -1;
    }
    unsigned long bits = 0;
    if (m != Py_None) {
        if (!PyLong_Check(m))
            return -1;
        bits = PyLong_AsUnsignedLong(m);
        if ((bits == (unsigned long)-1 && PyErr_Occurred()) || bits > 0xFFFFFFFFUL) {
            PyErr_Clear();
            return -1;
        }
    }
    if (p != Py_None && (!PyBytes_Check(p) || PyBytes_GET_SIZE(p) > MAX_VERDICT_PAYLOAD))
        return -1;
    if (verdict == 0) {
        s->counters[C_DROPPED]++;
        verdict_now(s, id, NF_DROP, 0, 0, NULL, 0);
        return 0;
    }
    if (m == Py_None && p == Py_None) {
        accept_deferred(s, id);
        return 0;
    }
    s->counters[C_ACCEPTED]++;
    if (bits & s->bypass_mark)
        s->counters[C_BYPASS_MARKED]++;
    verdict_now(s, id, NF_ACCEPT, m != Py_None, mark | (uint32_t)bits,
                p == Py_None ? NULL : PyBytes_AS_STRING(p),
                p == Py_None ? 0 : (size_t)PyBytes_GET_SIZE(p));
    return 0;
}

static void handle_packet(LoopObject *s, uint32_t id, uint32_t mark, const unsigned char *data,
                          size_t len)
{
    s->counters[C_PACKETS]++;
    if (s->draining) {
        accept_deferred(s, id);
        return;
    }
    PyObject *decision = NULL;
    PyObject *payload = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
    if (payload != NULL) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        PyObject *now = PyFloat_FromDouble((double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
        if (now != NULL) {
            PyObject *argv[2] = {payload, now};
            decision = PyObject_Vectorcall(s->handler, argv, 2, NULL);
            Py_DECREF(now);
        }
    }
    if (decision == NULL) {
        absorb(s, C_HANDLER_ERRORS); /* either way, the packet is accepted */
        accept_deferred(s, id);
    } else if (decision == s->accept) {
        accept_deferred(s, id);
    } else if (decision == s->bypass) {
        s->counters[C_ACCEPTED]++;
        s->counters[C_BYPASS_MARKED]++;
        verdict_now(s, id, NF_ACCEPT, 1, mark | s->bypass_mark, NULL, 0);
    } else if (decision == s->drop) {
        s->counters[C_DROPPED]++;
        verdict_now(s, id, NF_DROP, 0, 0, NULL, 0);
    } else {
        s->counters[C_SLOW_CALLS]++;
        PyObject *argv[2] = {decision, payload};
        PyObject *r = PyObject_Vectorcall(s->slow, argv, 2, NULL);
        if (r == NULL) {
            absorb(s, C_VERDICT_ERRORS);
            accept_deferred(s, id);
        } else {
            if (slow_verdict(s, id, mark, r) < 0) {
                s->counters[C_VERDICT_ERRORS]++;
                accept_deferred(s, id);
            }
            Py_DECREF(r);
        }
    }
    Py_XDECREF(decision);
    Py_XDECREF(payload);
}

/* ---- parsing -------------------------------------------------------------- */

/* One netlink message of `len` bytes (its nlmsg_len, already checked to lie
 * inside the datagram). */
static void handle_message(LoopObject *s, const struct nlmsghdr *h, const unsigned char *msg,
                           size_t len)
{
    if (h->nlmsg_type == NLMSG_ERROR) {
        int err;
        if (len < NLMSG_HDRLEN + sizeof err) {
            s->counters[C_BAD_MESSAGES]++;
            return;
        }
        memcpy(&err, msg + NLMSG_HDRLEN, sizeof err);
        if (err != 0)
            s->counters[C_VERDICT_ERRORS]++;
        return;
    }
    if (h->nlmsg_type != QUEUE_MSG(NFQNL_MSG_PACKET))
        return; /* NLMSG_NOOP, NLMSG_DONE, anything else: not ours to judge */
    struct nfgenmsg g;
    size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof g);
    if (len < off) {
        s->counters[C_BAD_MESSAGES]++;
        return;
    }
    memcpy(&g, msg + NLMSG_HDRLEN, sizeof g);
    if (ntohs(g.res_id) != s->queue_num) {
        s->counters[C_BAD_MESSAGES]++;
        return;
    }
    int have_id = 0;
    uint32_t id = 0, mark = 0;
    const unsigned char *payload = NULL;
    size_t plen = 0;
    while (off < len) {
        struct nlattr a;
        if (len - off < NLA_HDRLEN) {
            s->counters[C_BAD_MESSAGES]++;
            return;
        }
        memcpy(&a, msg + off, sizeof a);
        if (a.nla_len < NLA_HDRLEN || a.nla_len > len - off) {
            s->counters[C_BAD_MESSAGES]++;
            return;
        }
        const unsigned char *value = msg + off + NLA_HDRLEN;
        size_t vlen = a.nla_len - NLA_HDRLEN;
        switch (a.nla_type & NLA_TYPE_MASK) {
        case NFQA_PACKET_HDR:
            if (vlen < sizeof(struct nfqnl_msg_packet_hdr)) {
                s->counters[C_BAD_MESSAGES]++;
                return;
            }
            memcpy(&id, value, sizeof id);
            id = ntohl(id);
            have_id = 1;
            break;
        case NFQA_MARK:
            if (vlen < sizeof mark) {
                s->counters[C_BAD_MESSAGES]++;
                return;
            }
            memcpy(&mark, value, sizeof mark);
            mark = ntohl(mark);
            break;
        case NFQA_PAYLOAD:
            payload = value;
            plen = vlen;
            break;
        default:
            break;
        }
        size_t step = NLA_ALIGN(a.nla_len);
        if (step >= len - off)
            break;
        off += step;
    }
    if (!have_id) {
        s->counters[C_BAD_MESSAGES]++;
        return;
    }
    handle_packet(s, id, mark, payload != NULL ? payload : (const unsigned char *)"", plen);
}

static void handle_datagram(LoopObject *s, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        struct nlmsghdr h;
        if (len < NLMSG_HDRLEN) {
            s->counters[C_BAD_MESSAGES]++;
            return;
        }
        memcpy(&h, buf, sizeof h);
        if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len) {
            s->counters[C_BAD_MESSAGES]++; /* its length is a lie: nothing after it can be trusted */
            return;
        }
        handle_message(s, &h, buf, h.nlmsg_len);
        size_t step = NLMSG_ALIGN(h.nlmsg_len);
        if (step >= len)
            return;
        buf += step;
        len -= step;
    }
}

/* ---- the Loop type -------------------------------------------------------- */

static int Loop_init(LoopObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "queue_num", "bypass_mark", "batch", "poll_ms", "spin_us", NULL};
    int fd, batch = 32, poll_ms = 250, spin_us = 0;
    long queue_num;
    PyObject *mark_obj;
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "Loop is running");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ilO!|iii:Loop", kwlist, &fd, &queue_num,
                                     &PyLong_Type, &mark_obj, &batch, &poll_ms, &spin_us))
        return -1;
    unsigned long long bypass_mark = PyLong_AsUnsignedLongLong(mark_obj);
    if (bypass_mark == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        bypass_mark = 0; /* negative or huge: refused below */
    }
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "fd must be a file descriptor");
        return -1;
    }
    if (queue_num < 0 || queue_num > 0xFFFF) {
        PyErr_Format(PyExc_ValueError, "queue number %ld out of range 0-65535", queue_num);
        return -1;
    }
    if (bypass_mark == 0 || bypass_mark > 0xFFFFFFFFULL) {
        PyErr_SetString(PyExc_ValueError, "bypass mark must be a non-zero 32-bit value");
        return -1;
    }
    if (batch < 1 || batch > MAX_BATCH) {
        PyErr_Format(PyExc_ValueError, "batch %d out of range 1-%d", batch, MAX_BATCH);
        return -1;
    }
    if (poll_ms < 1 || poll_ms > 60000) {
        PyErr_Format(PyExc_ValueError, "poll_ms %d out of range 1-60000", poll_ms);
        return -1;
    }
    if (spin_us < 0 || spin_us > MAX_SPIN_US) {
        PyErr_Format(PyExc_ValueError, "spin_us %d out of range 0-%d", spin_us, MAX_SPIN_US);
        return -1;
    }
    self->fd = fd;
    self->queue_num = (uint16_t)queue_num;
    self->bypass_mark = (uint32_t)bypass_mark;
    self->batch = (unsigned int)batch;
    self->poll_ms = poll_ms;
    self->spin_ns = (long)spin_us * 1000L;
    atomic_store(&self->stop_requested, 0);
    return 0;
}

static long long mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static PyObject *raise_errno(int err)
{
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

static PyObject *Loop_run(LoopObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"handler", "accept", "bypass", "drop", "slow", "backlog", NULL};
    PyObject *handler, *accept, *bypass, *drop, *slow, *backlog;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOO!:run", kwlist, &handler, &accept, &bypass,
                                     &drop, &slow, &PyList_Type, &backlog))
        return NULL;
    if (!PyCallable_Check(handler) || !PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "handler and slow must be callable");
        return NULL;
    }
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "Loop.run is already running");
        return NULL;
    }

    int sndbuf = 0;
    socklen_t optlen = sizeof sndbuf;
    if (getsockopt(self->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &optlen) < 0)
        return raise_errno(errno);
    /* The kernel refuses a netlink datagram longer than its send buffer - 32. */
    size_t scap = sndbuf > 0 ? (size_t)sndbuf : 0;
    scap = scap > 256 ? scap - 256 : 0;
    if (scap > SEND_MAX)
        scap = SEND_MAX;
    if (scap < SEND_MIN)
        scap = SEND_MIN;

    unsigned int batch = self->batch;
    unsigned char *rbuf = PyMem_RawMalloc((size_t)batch * RECV_SLOT);
    unsigned char *sbuf = PyMem_RawMalloc(scap);
    struct mmsghdr *msgs = PyMem_RawCalloc(batch, sizeof *msgs);
    struct iovec *iovs = PyMem_RawCalloc(batch, sizeof *iovs);
    if (!rbuf || !sbuf || !msgs || !iovs) {
        PyMem_RawFree(rbuf);
        PyMem_RawFree(sbuf);
        PyMem_RawFree(msgs);
        PyMem_RawFree(iovs);
        return PyErr_NoMemory();
    }

    self->running = 1;
    self->handler = handler;
    self->accept = accept;
    self->bypass = bypass;
    self->drop = drop;
    self->slow = slow;
    self->sbuf = sbuf;
    self->scap = scap;
    self->slen = 0;
    self->smsgs = 0;
    self->have_pending = 0;
    self->draining = 0;

    /* The backlog first; the list may change under us (the handler is Python).
     * After a BaseException the rest is still accepted (draining: no Python call). */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(backlog); i++) {
        PyObject *item = PyList_GET_ITEM(backlog, i);
        if (!PyBytes_Check(item)) {
            self->counters[C_BAD_MESSAGES]++;
            continue;
        }
        Py_INCREF(item);
        handle_datagram(self, (const unsigned char *)PyBytes_AS_STRING(item),
                        (size_t)PyBytes_GET_SIZE(item));
        Py_DECREF(item);
    }
    flush(self);

    /* The kernel writes only msg_len and msg_hdr.msg_flags: set up once. */
    for (unsigned int i = 0; i < batch; i++) {
        iovs[i].iov_base = rbuf + (size_t)i * RECV_SLOT;
        iovs[i].iov_len = RECV_SLOT;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    struct pollfd pfd;
    pfd.fd = self->fd;
    pfd.events = POLLIN;
    /* Poll first when the last receive came back short: the socket was empty then, and a
     * receive now would most likely only say EAGAIN (one system call per wake-up saved). */
    int wait_first = 0;
    int have_last = 0; /* a packet has arrived in this run: last_ns is when */
    long long last_ns = 0;
    while (!self->draining && !atomic_load(&self->stop_requested)) {
        int n = -1, err = 0, received = 0;
        if (wait_first && have_last && self->spin_ns > 0 && mono_ns() - last_ns < self->spin_ns) {
            self->counters[C_SPINS]++;
            Py_BEGIN_ALLOW_THREADS
            for (;;) {
                n = recvmmsg(self->fd, msgs, batch, MSG_DONTWAIT, NULL);
                if (n >= 0)
                    break;
                err = errno;
                if (err != EAGAIN && err != EWOULDBLOCK)
                    break;
                if (atomic_load(&self->stop_requested) || mono_ns() - last_ns >= self->spin_ns)
                    break;
            }
            Py_END_ALLOW_THREADS
            /* Packets, or an error to handle below; nothing at all: sleep in poll() after all. */
            received = n >= 0 || (err != EAGAIN && err != EWOULDBLOCK);
            if (n > 0)
                self->counters[C_SPIN_HITS]++;
        }
        if (!received && wait_first) {
            int pr;
            Py_BEGIN_ALLOW_THREADS
            pr = poll(&pfd, 1, self->poll_ms);
            if (pr < 0)
                err = errno;
            Py_END_ALLOW_THREADS
            if (pr < 0 && err != EINTR) {
                raise_errno(err);
                break;
            }
            if (pr > 0 && (pfd.revents & POLLNVAL)) {
                raise_errno(EBADF);
                break;
            }
            if (pr > 0)
                wait_first = 0;
            if (PyErr_CheckSignals() < 0)
                break;
            continue; /* the stop flag first, then the receive */
        }
        if (!received) {
            Py_BEGIN_ALLOW_THREADS
            n = recvmmsg(self->fd, msgs, batch, MSG_DONTWAIT, NULL);
            if (n < 0)
                err = errno;
            Py_END_ALLOW_THREADS
            self->counters[C_RECV_CALLS]++;
        }
        if (n < 0) {
            if (err == EAGAIN || err == EWOULDBLOCK) {
                wait_first = 1;
            } else if (err == ENOBUFS) {
                self->counters[C_ENOBUFS]++;
            } else if (err != EINTR) {
                raise_errno(err);
                break;
            }
        } else {
            if (n > 0 && self->spin_ns > 0) {
                last_ns = mono_ns();
                have_last = 1;
            }
            for (int i = 0; i < n; i++)
                handle_datagram(self, rbuf + (size_t)i * RECV_SLOT, msgs[i].msg_len);
            flush(self);
            wait_first = (unsigned int)n < batch;
        }
        if (!self->draining && PyErr_CheckSignals() < 0)
            break;
    }
    flush(self);

    self->running = 0;
    self->handler = self->accept = self->bypass = self->drop = self->slow = NULL;
    self->sbuf = NULL;
    self->scap = 0;
    atomic_store(&self->stop_requested, 0);
    PyMem_RawFree(rbuf);
    PyMem_RawFree(sbuf);
    PyMem_RawFree(msgs);
    PyMem_RawFree(iovs);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Loop_stop(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    atomic_store(&self->stop_requested, 1);
    Py_RETURN_NONE;
}

static PyObject *Loop_stats(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    for (int i = 0; i < NCOUNTERS; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(self->counters[i]);
        if (v == NULL || PyDict_SetItemString(d, counter_names[i], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    return d;
}

static PyMethodDef Loop_methods[] = {
    {"run", (PyCFunction)(void (*)(void))Loop_run, METH_VARARGS | METH_KEYWORDS,
     "run(handler, accept, bypass, drop, slow, backlog) -> None\n\n"
     "Judge queued packets until stop() (or a BaseException that is not an Exception)."},
    {"stop", (PyCFunction)Loop_stop, METH_NOARGS,
     "Make run() return within poll_ms; safe from any thread or a signal handler."},
    {"stats", (PyCFunction)Loop_stats, METH_NOARGS, "The counters, as a dict of ints."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LoopType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "inline_ips.source._nfqloop.Loop",
    .tp_doc = "Loop(fd, queue_num, bypass_mark, batch=32, poll_ms=250): an NFQUEUE receive loop.",
    .tp_basicsize = sizeof(LoopObject),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Loop_init,
    .tp_methods = Loop_methods,
};

static struct PyModuleDef nfqloop_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "inline_ips.source._nfqloop",
    .m_doc = "The NFQUEUE receive loop of inline_ips.source.nfqueue, in C (recvmmsg, batch verdicts).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__nfqloop(void)
{
    if (PyType_Ready(&LoopType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&nfqloop_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&LoopType);
    if (PyModule_AddObject(m, "Loop", (PyObject *)&LoopType) < 0) {
        Py_DECREF(&LoopType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "RECV_SLOT", RECV_SLOT) < 0 ||
        PyModule_AddIntConstant(m, "MAX_BATCH", MAX_BATCH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
