/*
 * inline_ips.detect._fastrate -- the compiled common case of RateTracker.update.
 *
 * update(state, tracker, pkt, flow, to_server) with state = (keys, move_to_end, kind,
 * window, threshold, slow), as RateTracker builds it. For a rule whose measure counts 1
 * a packet (packets, or distinct destination ports or hosts) keyed by source or by
 * source and destination, and a packet whose key already has a window that is still
 * open, it does what RateTracker.update does in Python: moves the key to the LRU end,
 * counts the packet (or adds its port or host to the window's set, which stops growing
 * at the threshold) and returns 0 (under), 1 (crossed now) or 2 (still over). Anything
 * else -- a new key, a window that has ended, another measure or key, an object not laid
 * out as setup() found -- is slow(tracker, pkt, flow, to_server), the Python method,
 * before anything was changed.
 *
 * The Python code (inline_ips/detect/rate.py) is the specification; this file mirrors
 * it, and tests/detect/test_fastrate.py runs both on the same packets and compares every
 * window after every packet.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../_slots.h"


/* kind: which key and what a packet adds (RateTracker.fast_kind). */
enum { K_SRC_PACKETS = 1, K_SRC_DST_PACKETS, K_SRC_PORTS, K_SRC_DST_PORTS, K_SRC_HOSTS, K_SRC_DST_HOSTS };

enum { P_SRC, P_DST, P_DPORT, P_TS, NP };
static const char *const pkt_names[NP] = {"src", "dst", "dport", "ts"};
enum { W_COUNT, W_DISTINCT, W_FIRED, W_START, NW };
static const char *const win_names[NW] = {"count", "distinct", "fired", "start"};

static PyTypeObject *pkt_type = NULL;
static PyTypeObject *win_type = NULL;
static Py_ssize_t pkt_off[NP];
static Py_ssize_t win_off[NW];
static PyObject *one = NULL;

static PyObject *
slow_call(PyObject *slow, PyObject *const *args)
{
    /* slow(tracker, pkt, flow, to_server) */
    return PyObject_Vectorcall(slow, args + 1, 4, NULL);
}

static PyObject *
fr_update(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "update(state, tracker, pkt, flow, to_server)");
        return NULL;
    }
    PyObject *state = args[0], *pkt = args[2];
    if (!PyTuple_CheckExact(state) || PyTuple_GET_SIZE(state) != 6) {
        PyErr_SetString(PyExc_TypeError, "update: state must be (keys, move_to_end, kind, window, threshold, slow)");
        return NULL;
    }
    PyObject *keys = PyTuple_GET_ITEM(state, 0), *move = PyTuple_GET_ITEM(state, 1);
    PyObject *kind_obj = PyTuple_GET_ITEM(state, 2), *window_obj = PyTuple_GET_ITEM(state, 3);
    PyObject *threshold_obj = PyTuple_GET_ITEM(state, 4), *slow = PyTuple_GET_ITEM(state, 5);
    if (win_type == NULL || Py_TYPE(pkt) != pkt_type || !PyDict_Check(keys) || !PyLong_CheckExact(kind_obj) ||
        !PyFloat_CheckExact(window_obj) || !PyLong_CheckExact(threshold_obj))
        return slow_call(slow, args);
    long kind = PyLong_AsLong(kind_obj);
    if (kind < K_SRC_PACKETS || kind > K_SRC_DST_HOSTS)
        return slow_call(slow, args);
    Py_ssize_t threshold = PyLong_AsSsize_t(threshold_obj);
    if (threshold == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return slow_call(slow, args); /* a threshold beyond Py_ssize_t: Python compares it */
    }
    PyObject *p[NP];
    for (int i = 0; i < NP; i++) {
        p[i] = SLOT(pkt, pkt_off[i]);
        if (p[i] == NULL)
            return slow_call(slow, args);
    }
    if (!PyFloat_CheckExact(p[P_TS]))
        return slow_call(slow, args);
    const int by_pair = kind == K_SRC_DST_PACKETS || kind == K_SRC_DST_PORTS || kind == K_SRC_DST_HOSTS;
    PyObject *key = by_pair ? PyTuple_Pack(2, p[P_SRC], p[P_DST]) : Py_NewRef(p[P_SRC]);
    if (key == NULL)
        return NULL;
    PyObject *result = NULL;
    PyObject *w = PyDict_GetItemWithError(keys, key);
    if (w == NULL) {
        if (PyErr_Occurred())
            goto done;
        goto slow; /* a new key: Python opens its window */
    }
    Py_INCREF(w);
    if (Py_TYPE(w) != win_type)
        goto slow;
    PyObject *wv[NW];
    for (int i = 0; i < NW; i++) {
        wv[i] = SLOT(w, win_off[i]);
        if (wv[i] == NULL)
            goto slow;
    }
    if (!PyFloat_CheckExact(wv[W_START]))
        goto slow;
    double now = PyFloat_AS_DOUBLE(p[P_TS]), start = PyFloat_AS_DOUBLE(wv[W_START]);
    /* Python: w is None or now - w.start >= window or now < w.start -> a new window */
    if (!(now - start < PyFloat_AS_DOUBLE(window_obj)) || now < start)
        goto slow;
    const int distinct = kind >= K_SRC_PORTS;
    PyObject *set = wv[W_DISTINCT];
    if (distinct && !PySet_CheckExact(set))
        goto slow; /* None (no set yet) or something else: Python */
    if (!distinct && !PyLong_CheckExact(wv[W_COUNT]))
        goto slow;

    PyObject *moved = PyObject_CallOneArg(move, key);
    if (moved == NULL)
        goto done;
    Py_DECREF(moved);
    Py_ssize_t total;
    if (distinct) {
        PyObject *value = (kind == K_SRC_PORTS || kind == K_SRC_DST_PORTS) ? p[P_DPORT] : p[P_DST];
        /* Stop growing at the threshold: the set only has to prove the count. */
        if (PySet_GET_SIZE(set) < threshold && PySet_Add(set, value) < 0)
            goto done;
        total = PySet_GET_SIZE(set);
    }
    else {
        PyObject *count = PyNumber_Add(wv[W_COUNT], one);
        if (count == NULL)
            goto done;
        Py_SETREF(SLOT(w, win_off[W_COUNT]), count);
        total = PyLong_AsSsize_t(count);
        if (total == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            total = PY_SSIZE_T_MAX; /* a count beyond Py_ssize_t is over any threshold that fits */
        }
    }
    if (total < threshold) {
        result = PyLong_FromLong(0);
        goto done;
    }
    int fired = PyObject_IsTrue(wv[W_FIRED]);
    if (fired < 0)
        goto done;
    if (fired) {
        result = PyLong_FromLong(2);
        goto done;
    }
    Py_SETREF(SLOT(w, win_off[W_FIRED]), Py_NewRef(Py_True));
    result = PyLong_FromLong(1);
    goto done;

slow:
    result = slow_call(slow, args);
done:
    Py_XDECREF(w);
    Py_DECREF(key);
    return result;
}

static PyObject *
fr_setup(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *win_cls, *pkt_cls;
    if (!PyArg_ParseTuple(args, "O!O!:setup", &PyType_Type, &win_cls, &PyType_Type, &pkt_cls))
        return NULL;
    Py_ssize_t woff[NW], poff[NP];
    if (slot_offsets((PyTypeObject *)win_cls, win_names, NW, woff, "_fastrate.setup") < 0 ||
        slot_offsets((PyTypeObject *)pkt_cls, pkt_names, NP, poff, "_fastrate.setup") < 0)
        return NULL;
    if (one == NULL && (one = PyLong_FromLong(1)) == NULL)
        return NULL;
    for (int i = 0; i < NW; i++)
        win_off[i] = woff[i];
    for (int i = 0; i < NP; i++)
        pkt_off[i] = poff[i];
    Py_XSETREF(win_type, (PyTypeObject *)Py_NewRef(win_cls));
    Py_XSETREF(pkt_type, (PyTypeObject *)Py_NewRef(pkt_cls));
    Py_RETURN_NONE;
}

static PyMethodDef fr_methods[] = {
    {"update", (PyCFunction)(void (*)(void))fr_update, METH_FASTCALL,
     "update(state, tracker, pkt, flow, to_server) -> 0, 1 or 2\n\n"
     "RateTracker.update for an open window of a unit measure; else state[5](tracker, pkt, flow, to_server)."},
    {"setup", fr_setup, METH_VARARGS, "setup(_Window, Packet) -> None\n\nFind and remember the slots update() uses."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fr_module = {
    PyModuleDef_HEAD_INIT,
    "inline_ips.detect._fastrate",
    "Compiled common case of inline_ips.detect.rate.RateTracker.update (see inline_ips/detect/rate.py).",
    -1,
    fr_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fastrate(void)
{
    return PyModule_Create(&fr_module);
}
