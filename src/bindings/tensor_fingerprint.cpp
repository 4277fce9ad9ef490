#include "tensor_fingerprint.h"

#include <Python.h>

#include "tensor_reader.h"

namespace nb = nanobind;

namespace sol::bindings {
namespace {

// `object.attribute` or `object.attribute()` as an integer; false (the
// Python error cleared) when it cannot be read.
bool read_integer(PyObject* object, PyObject* attribute, bool call, std::intptr_t& value) {
    PyObject* result = call ? PyObject_CallMethodObjArgs(object, attribute, nullptr) : PyObject_GetAttr(object, attribute);
    if (result == nullptr) {
        PyErr_Clear();
        return false;
    }
    value = static_cast<std::intptr_t>(PyLong_AsLongLong(result));
    Py_DECREF(result);
    if (value == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return false;
    }
    return true;
}

}  // namespace

bool TensorFingerprint::changed(const nb::list& tensors) {
    static PyObject* const data_ptr = PyUnicode_InternFromString("data_ptr");
    static PyObject* const version = PyUnicode_InternFromString("_version");
    const std::size_t count = nb::len(tensors);
    bool differs = !known_ || state_.size() != 3 * count;
    if (state_.size() != 3 * count) state_.assign(3 * count, 0);
    for (std::size_t i = 0; i < count; ++i) {
        PyObject* tensor = PyList_GET_ITEM(tensors.ptr(), static_cast<Py_ssize_t>(i));
        std::intptr_t now[3] = {reinterpret_cast<std::intptr_t>(tensor), 0, 0};
        const bool read = read_tensor_directly(tensor, now[1], now[2]) ||
                          (read_integer(tensor, data_ptr, true, now[1]) && read_integer(tensor, version, false, now[2]));
        if (!read) {
            known_ = false;  // unreadable: the next call is a change too
            return true;
        }
        for (int k = 0; k < 3; ++k) {
            differs |= state_[3 * i + k] != now[k];
            state_[3 * i + k] = now[k];
        }
    }
    known_ = true;
    return differs;
}

}  // namespace sol::bindings
