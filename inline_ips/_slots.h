/*
 * inline_ips/_slots.h -- finding the slots a compiled twin reads by offset (_fastflow.c,
 * detect/_fastrate.c).
 *
 * slot_offsets(cls, names, n, out, who) looks up each name in cls's own dict, checks it is a
 * writable object slot (a member descriptor of cls itself, T_OBJECT_EX, inside the instance)
 * and stores its offset; a TypeError naming who, the class and the slot otherwise. Readers
 * must still check Py_TYPE(obj) == cls before using an offset, and treat a NULL slot (unset)
 * as "not the common case".
 */

#ifndef INLINE_IPS_SLOTS_H
#define INLINE_IPS_SLOTS_H

#include <Python.h>

#ifndef Py_T_OBJECT_EX /* before 3.12 these live in structmember.h */
#include "structmember.h"
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_READONLY READONLY
#endif

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

static int
slot_offsets(PyTypeObject *cls, const char *const names[], int n, Py_ssize_t *out, const char *who)
{
    if (cls->tp_dict == NULL) {
        PyErr_Format(PyExc_TypeError, "%s: %s has no type dict", who, cls->tp_name);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        PyObject *descr = PyDict_GetItemString(cls->tp_dict, names[i]);
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type) || PyDescr_TYPE(descr) != cls) {
            PyErr_Format(PyExc_TypeError, "%s: %s has no slot %s", who, cls->tp_name, names[i]);
            return -1;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
        if (m->type != Py_T_OBJECT_EX || (m->flags & Py_READONLY) || m->offset < (Py_ssize_t)sizeof(PyObject) ||
            m->offset > cls->tp_basicsize - (Py_ssize_t)sizeof(PyObject *)) {
            PyErr_Format(PyExc_TypeError, "%s: %s.%s is not a plain object slot", who, cls->tp_name, names[i]);
            return -1;
        }
        out[i] = m->offset;
    }
    return 0;
}

#endif
