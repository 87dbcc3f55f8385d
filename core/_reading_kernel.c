/* The collector's hot path in C: one reading's JSON payload → its line of line protocol, checked
 * against a plan built in Python (core/reading_plans.py) for one payload shape: the keys in order,
 * what each must be, the range of each number, the field order of the line.
 *
 * Contract-agnostic on purpose: every rule comes from the plan, and anything the plan does not
 * describe exactly — another key order, a JSON type, an escape in a string, a number out of range,
 * a timestamp form other than the plain RFC 3339 subset below — answers None, and Python takes the
 * message the long way (which says what is wrong). So this file can only ever be *less* accepting
 * than core/decode.py; tests/unit/core/test_reading_plans.py holds it to the same lines.
 *
 *   Plan(entries, outputs, labels)
 *     entries: per payload key, in payload order, (key: bytes, kind: int, low: float, high: float,
 *              choices: tuple[(json_text: bytes, line_text: bytes)]); for LABEL and TEXT entries
 *              `high` is the longest value allowed, in characters
 *     outputs: per line field, in line order, (entry index, b"name=")
 *     labels:  the LABEL entries' indexes, in the order their values appear in the series key
 *   reading_line(plan, payload, received_at, max_future_s, max_age_s, max_payload_bytes, prefix)
 *     prefix: (bytes, …), one more than labels: the series key around the label values
 *     → (line: str, seq: int, ts_ms: int)     line = prefix[0] label0 prefix[1] … "name=value,…,seq=Ni <ts ns>"
 *     → None                                  the payload is not exactly of this plan's shape
 *
 * Strings are taken only as printable ASCII without escapes (0x20-0x7e, no backslash): then a JSON
 * string's bytes are its value, a line-protocol string field is that value in quotes, and a tag
 * value only needs `,`, `=` and ` ` escaped. A LABEL must also hold something besides spaces.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

enum { K_TS = 1, K_SEQ = 2, K_FLOAT = 3, K_INT = 4, K_BOOL = 5, K_NULL = 6, K_CHOICE = 7, K_LABEL = 8, K_TEXT = 9 };

#define MAX_ENTRIES 64
#define LINE_BUFFER 8192
#define TWO_POW_53 9007199254740992LL
#define MAX_INT_DIGITS 18 /* below 2^63: no overflow check needed while accumulating */

typedef struct {
    char *json_text;
    Py_ssize_t json_len;
    char *line_text;
    Py_ssize_t line_len;
} Choice;

typedef struct {
    char *key;
    Py_ssize_t key_len;
    int kind;
    double low, high;
    Choice *choices;
    Py_ssize_t n_choices;
} Entry;

typedef struct {
    int entry;
    char *name;
    Py_ssize_t name_len;
} Output;

typedef struct {
    PyObject_HEAD
    Entry *entries;
    Py_ssize_t n_entries;
    Output *outputs;
    Py_ssize_t n_outputs;
    int labels[MAX_ENTRIES];
    Py_ssize_t n_labels;
} Plan;

static PyTypeObject PlanType;

/* What one entry's value turned out to be, for writing the line. */
typedef struct {
    const char *text; /* FLOAT: canonical JSON text (or NULL: format the double); LABEL, TEXT: the value */
    Py_ssize_t len;
    double number;
    long long integer; /* INT; BOOL as 0/1; CHOICE as its index */
} Value;

static char *copy_bytes(PyObject *b, Py_ssize_t *len, int ascii_only) {
    char *data;
    if (PyBytes_AsStringAndSize(b, &data, len) < 0) return NULL;
    if (ascii_only) {
        for (Py_ssize_t i = 0; i < *len; i++) {
            if ((unsigned char)data[i] >= 0x80) {
                PyErr_SetString(PyExc_ValueError, "plan texts must be ASCII");
                return NULL;
            }
        }
    }
    char *copy = PyMem_Malloc(*len + 1);
    if (copy == NULL) { PyErr_NoMemory(); return NULL; }
    memcpy(copy, data, *len);
    copy[*len] = '\0';
    return copy;
}

static void plan_free_parts(Plan *self) {
    if (self->entries) {
        for (Py_ssize_t i = 0; i < self->n_entries; i++) {
            Entry *e = &self->entries[i];
            PyMem_Free(e->key);
            if (e->choices) {
                for (Py_ssize_t c = 0; c < e->n_choices; c++) {
                    PyMem_Free(e->choices[c].json_text);
                    PyMem_Free(e->choices[c].line_text);
                }
                PyMem_Free(e->choices);
            }
        }
        PyMem_Free(self->entries);
        self->entries = NULL;
    }
    if (self->outputs) {
        for (Py_ssize_t i = 0; i < self->n_outputs; i++) PyMem_Free(self->outputs[i].name);
        PyMem_Free(self->outputs);
        self->outputs = NULL;
    }
}

static void plan_dealloc(Plan *self) {
    plan_free_parts(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int plan_init(Plan *self, PyObject *args, PyObject *kwds) {
    PyObject *entries, *outputs, *labels;
    static char *kwlist[] = {"entries", "outputs", "labels", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!", kwlist, &PyTuple_Type, &entries, &PyTuple_Type, &outputs,
                                     &PyTuple_Type, &labels))
        return -1;
    plan_free_parts(self);
    Py_ssize_t n = PyTuple_GET_SIZE(entries), m = PyTuple_GET_SIZE(outputs);
    if (n > MAX_ENTRIES || m > n) {
        PyErr_SetString(PyExc_ValueError, "too many plan entries");
        return -1;
    }
    self->entries = PyMem_Calloc(n ? n : 1, sizeof(Entry));
    self->outputs = PyMem_Calloc(m ? m : 1, sizeof(Output));
    if (!self->entries || !self->outputs) { PyErr_NoMemory(); return -1; }
    self->n_entries = n;
    self->n_outputs = m;
    for (Py_ssize_t i = 0; i < n; i++) {
        Entry *e = &self->entries[i];
        PyObject *key, *choices;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(entries, i), "O!iddO!", &PyBytes_Type, &key, &e->kind, &e->low,
                              &e->high, &PyTuple_Type, &choices))
            return -1;
        if (e->kind < K_TS || e->kind > K_TEXT) {
            PyErr_SetString(PyExc_ValueError, "unknown plan entry kind");
            return -1;
        }
        if ((e->key = copy_bytes(key, &e->key_len, 1)) == NULL) return -1;
        e->n_choices = PyTuple_GET_SIZE(choices);
        if (e->n_choices) {
            e->choices = PyMem_Calloc(e->n_choices, sizeof(Choice));
            if (!e->choices) { PyErr_NoMemory(); return -1; }
            for (Py_ssize_t c = 0; c < e->n_choices; c++) {
                PyObject *json_text, *line_text;
                if (!PyArg_ParseTuple(PyTuple_GET_ITEM(choices, c), "O!O!", &PyBytes_Type, &json_text,
                                      &PyBytes_Type, &line_text))
                    return -1;
                if ((e->choices[c].json_text = copy_bytes(json_text, &e->choices[c].json_len, 1)) == NULL) return -1;
                if ((e->choices[c].line_text = copy_bytes(line_text, &e->choices[c].line_len, 1)) == NULL) return -1;
            }
        }
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *name;
        Output *o = &self->outputs[i];
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(outputs, i), "iO!", &o->entry, &PyBytes_Type, &name)) return -1;
        if (o->entry < 0 || o->entry >= n) {
            PyErr_SetString(PyExc_ValueError, "output refers to no entry");
            return -1;
        }
        int kind = self->entries[o->entry].kind;
        if (kind == K_TS || kind == K_SEQ || kind == K_NULL || kind == K_LABEL) {
            PyErr_SetString(PyExc_ValueError, "ts, seq, null and label entries are not line fields");
            return -1;
        }
        if ((o->name = copy_bytes(name, &o->name_len, 1)) == NULL) return -1;
    }
    self->n_labels = PyTuple_GET_SIZE(labels);
    if (self->n_labels > n) {
        PyErr_SetString(PyExc_ValueError, "more labels than entries");
        return -1;
    }
    for (Py_ssize_t i = 0; i < self->n_labels; i++) {
        long at = PyLong_AsLong(PyTuple_GET_ITEM(labels, i));
        if (at == -1 && PyErr_Occurred()) return -1;
        if (at < 0 || at >= n || self->entries[at].kind != K_LABEL) {
            PyErr_SetString(PyExc_ValueError, "labels must name LABEL entries");
            return -1;
        }
        self->labels[i] = (int)at;
    }
    return 0;
}

/* --- JSON, strictly (RFC 8259), for the few forms a plan accepts ------------------------------ */

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* A JSON number at p: its end, and whether it has a fraction or exponent (a float to JSON
 * parsers such as orjson). NULL if it is not a valid JSON number. */
static const char *scan_number(const char *p, const char *end, int *is_float) {
    *is_float = 0;
    if (p < end && *p == '-') p++;
    if (p >= end || !is_digit(*p)) return NULL;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && *p == '.') {
        *is_float = 1;
        p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *is_float = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    return p;
}

/* An integer token (no fraction or exponent) of at most MAX_INT_DIGITS digits. */
static int integer_of(const char *p, const char *end, long long *out) {
    int negative = 0;
    if (*p == '-') { negative = 1; p++; }
    if (end - p > MAX_INT_DIGITS) return 0;
    long long v = 0;
    for (; p < end; p++) v = v * 10 + (*p - '0');
    *out = negative ? -v : v;
    return 1;
}

/* A JSON string at p (at its opening quote) of printable ASCII without escapes: its contents.
 * Anything else answers NULL, and the general path decides. */
static const char *scan_plain_string(const char *p, const char *end, const char **start, Py_ssize_t *len) {
    if (p >= end || *p != '"') return NULL;
    const char *s = ++p;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c == '\\' || c < 0x20 || c >= 0x7f) return NULL;
        p++;
    }
    if (p >= end) return NULL;
    *start = s;
    *len = p - s;
    return p + 1;
}

/* Is `text` (a JSON number with a fraction and no exponent) exactly what Python's repr() of its
 * double prints? True for: no leading zeros, no trailing zero in the fraction (but "N.0"), at
 * most 15 significant digits (so the text is the shortest that round-trips), and a magnitude
 * repr() prints without an exponent (>= 1e-4). Conservative: False only costs a dtoa call. */
static int is_repr_text(const char *p, Py_ssize_t len) {
    const char *end = p + len;
    if (*p == '-') p++;
    const char *int_start = p;
    while (p < end && is_digit(*p)) p++;
    Py_ssize_t int_digits = p - int_start;
    if (p >= end || *p != '.') return 0;
    const char *frac = ++p;
    Py_ssize_t frac_digits = end - frac;
    if (frac_digits < 1) return 0;
    for (const char *q = frac; q < end; q++)
        if (!is_digit(*q)) return 0;
    int int_is_zero = int_digits == 1 && *int_start == '0';
    if (end[-1] == '0' && frac_digits != 1) return 0; /* "2.50" prints as 2.5; "2.0" as itself */
    if (int_is_zero) {
        /* 0.0 is "0.0"; below 1e-4 repr() switches to an exponent */
        if (!(frac_digits == 1 && frac[0] == '0')) {
            Py_ssize_t zeros = 0;
            while (zeros < frac_digits && frac[zeros] == '0') zeros++;
            if (zeros >= 4) return 0;
        }
        return frac_digits <= 15;
    }
    return int_digits + frac_digits <= 15;
}

/* --- time ------------------------------------------------------------------------------------------- */

static long long days_from_civil(long long y, int m, int d) { /* H. Hinnant's algorithm */
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int two_digits(const char *p, int *out) {
    if (!is_digit(p[0]) || !is_digit(p[1])) return 0;
    *out = (p[0] - '0') * 10 + (p[1] - '0');
    return 1;
}

/* "YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)" → epoch milliseconds; 0 for any other form. */
static int rfc3339_ms(const char *p, Py_ssize_t len, long long *out) {
    const char *end = p + len;
    int year_hi, year_lo, month, day, hour, minute, second;
    if (len < 20 || !two_digits(p, &year_hi) || !two_digits(p + 2, &year_lo) || p[4] != '-' ||
        !two_digits(p + 5, &month) || p[7] != '-' || !two_digits(p + 8, &day) || p[10] != 'T' ||
        !two_digits(p + 11, &hour) || p[13] != ':' || !two_digits(p + 14, &minute) || p[16] != ':' ||
        !two_digits(p + 17, &second))
        return 0;
    int year = year_hi * 100 + year_lo;
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > month_days[month - 1] + (month == 2 && leap) ||
        hour > 23 || minute > 59 || second > 59)
        return 0;
    p += 19;
    long long micros = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (p < end && is_digit(*p) && digits < 7) { micros = micros * 10 + (*p - '0'); p++; digits++; }
        if (digits < 1 || digits > 6) return 0;
        for (; digits < 6; digits++) micros *= 10;
    }
    long long offset_s = 0;
    if (p < end && *p == 'Z') {
        p++;
    } else if (p < end && (*p == '+' || *p == '-')) {
        int sign = *p == '-' ? -1 : 1, off_h, off_m;
        if (end - p < 6 || !two_digits(p + 1, &off_h) || p[3] != ':' || !two_digits(p + 4, &off_m) || off_h > 23 ||
            off_m > 59)
            return 0;
        offset_s = sign * (off_h * 3600LL + off_m * 60LL);
        p += 6;
    } else {
        return 0; /* no offset: the general path rejects it and says why */
    }
    if (p != end) return 0;
    long long seconds = days_from_civil(year, month, day) * 86400LL + hour * 3600LL + minute * 60LL + second - offset_s;
    *out = seconds * 1000 + micros / 1000;
    return 1;
}

/* --- the line ------------------------------------------------------------------------------------ */

typedef struct {
    char *data;
    Py_ssize_t len;
} Buffer;

static int put(Buffer *b, const char *text, Py_ssize_t len) {
    if (b->len + len > LINE_BUFFER) return 0;
    memcpy(b->data + b->len, text, len);
    b->len += len;
    return 1;
}

static int put_integer(Buffer *b, long long v) {
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%lld", v);
    return put(b, digits, n);
}

static int put_double(Buffer *b, double v) {
    char *text = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) {
        PyErr_Clear();
        return 0;
    }
    int ok = put(b, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return ok;
}

static int put_tag_value(Buffer *b, const char *text, Py_ssize_t len) {
    for (Py_ssize_t i = 0; i < len; i++) {
        char c = text[i];
        if ((c == ',' || c == '=' || c == ' ') && !put(b, "\\", 1)) return 0;
        if (!put(b, &c, 1)) return 0;
    }
    return 1;
}

static PyObject *reading_line(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7 || !PyBytes_Check(args[1]) || Py_TYPE(args[0]) != &PlanType || !PyTuple_Check(args[6]) ||
        PyTuple_GET_SIZE(args[6]) != ((Plan *)args[0])->n_labels + 1) {
        PyErr_SetString(PyExc_TypeError, "reading_line(plan, payload: bytes, received_at, max_future_s, max_age_s, "
                                         "max_payload_bytes, prefix: tuple of len(labels) + 1 bytes)");
        return NULL;
    }
    Plan *plan = (Plan *)args[0];
    PyObject *prefix = args[6];
    double received_at = PyFloat_AsDouble(args[2]), max_future_s = PyFloat_AsDouble(args[3]),
           max_age_s = PyFloat_AsDouble(args[4]);
    Py_ssize_t max_payload_bytes = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred()) return NULL;
    if (PyBytes_GET_SIZE(args[1]) > max_payload_bytes) Py_RETURN_NONE;
    const char *p = PyBytes_AS_STRING(args[1]);
    const char *end = p + PyBytes_GET_SIZE(args[1]);
    Value values[MAX_ENTRIES];
    long long seq = -1, ts_ms = 0;

    p = skip_ws(p, end);
    if (p >= end || *p != '{') Py_RETURN_NONE;
    p++;
    for (Py_ssize_t i = 0; i < plan->n_entries; i++) {
        const Entry *e = &plan->entries[i];
        Value *v = &values[i];
        p = skip_ws(p, end);
        if (i > 0) {
            if (p >= end || *p != ',') Py_RETURN_NONE;
            p = skip_ws(p + 1, end);
        }
        if (end - p < e->key_len + 2 || *p != '"' || memcmp(p + 1, e->key, e->key_len) != 0 || p[e->key_len + 1] != '"')
            Py_RETURN_NONE;
        p = skip_ws(p + e->key_len + 2, end);
        if (p >= end || *p != ':') Py_RETURN_NONE;
        p = skip_ws(p + 1, end);
        if (p >= end) Py_RETURN_NONE;
        const char *token = p, *token_end;
        int is_float;
        switch (e->kind) {
        case K_FLOAT: {
            if ((token_end = scan_number(p, end, &is_float)) == NULL || !is_float || token_end - token > 40)
                Py_RETURN_NONE;
            char text[48];
            memcpy(text, token, token_end - token);
            text[token_end - token] = '\0';
            v->number = PyOS_string_to_double(text, NULL, NULL);
            if (v->number == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                Py_RETURN_NONE;
            }
            if (!(e->low <= v->number && v->number <= e->high)) Py_RETURN_NONE;
            if (is_repr_text(token, token_end - token)) {
                v->text = token;
                v->len = token_end - token;
            } else {
                v->text = NULL;
            }
            p = token_end;
            break;
        }
        case K_INT:
        case K_SEQ:
        case K_TS:
            if (e->kind == K_TS && *p == '"') {
                const char *s;
                Py_ssize_t len;
                if ((p = scan_plain_string(p, end, &s, &len)) == NULL || !rfc3339_ms(s, len, &ts_ms)) Py_RETURN_NONE;
                break;
            }
            if ((token_end = scan_number(p, end, &is_float)) == NULL || is_float ||
                !integer_of(token, token_end, &v->integer))
                Py_RETURN_NONE;
            p = token_end;
            if (e->kind == K_INT) {
                if (v->integer > TWO_POW_53 || v->integer < -TWO_POW_53) Py_RETURN_NONE;
                double as_double = (double)v->integer;
                if (!(e->low <= as_double && as_double <= e->high)) Py_RETURN_NONE;
            } else if (e->kind == K_SEQ) {
                if (v->integer < 0) Py_RETURN_NONE;
                seq = v->integer;
            } else {
                ts_ms = v->integer;
            }
            break;
        case K_BOOL:
            if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
                v->integer = 1;
                p += 4;
            } else if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
                v->integer = 0;
                p += 5;
            } else {
                Py_RETURN_NONE;
            }
            break;
        case K_NULL:
            if (end - p < 4 || memcmp(p, "null", 4) != 0) Py_RETURN_NONE;
            p += 4;
            break;
        case K_LABEL:
        case K_TEXT:
            if ((p = scan_plain_string(p, end, &v->text, &v->len)) == NULL || v->len > e->high) Py_RETURN_NONE;
            if (e->kind == K_LABEL) {
                Py_ssize_t c = 0;
                while (c < v->len && v->text[c] == ' ') c++;
                if (c == v->len) Py_RETURN_NONE; /* empty or only spaces */
            }
            break;
        case K_CHOICE: {
            const char *s;
            Py_ssize_t len, c;
            if ((p = scan_plain_string(p, end, &s, &len)) == NULL) Py_RETURN_NONE;
            for (c = 0; c < e->n_choices; c++)
                if (e->choices[c].json_len == len && memcmp(e->choices[c].json_text, s, len) == 0) break;
            if (c == e->n_choices) Py_RETURN_NONE;
            v->integer = c;
            break;
        }
        default:
            Py_RETURN_NONE;
        }
    }
    p = skip_ws(p, end);
    if (p >= end || *p != '}') Py_RETURN_NONE;
    p = skip_ws(p + 1, end);
    if (p != end || seq < 0) Py_RETURN_NONE;

    /* The timestamp rules of core.decode._check_ts, in the same float arithmetic. */
    if (ts_ms < 0 || ts_ms >= TWO_POW_53 || ts_ms > 9000000000000LL) Py_RETURN_NONE;
    double ts_s = (double)ts_ms / 1000.0;
    if (ts_s > received_at + max_future_s || ts_s < received_at - max_age_s) Py_RETURN_NONE;

    char data[LINE_BUFFER];
    Buffer line = {data, 0};
    for (Py_ssize_t k = 0; k <= plan->n_labels; k++) {
        PyObject *piece = PyTuple_GET_ITEM(prefix, k);
        if (!PyBytes_Check(piece)) {
            PyErr_SetString(PyExc_TypeError, "prefix pieces must be bytes");
            return NULL;
        }
        if (!put(&line, PyBytes_AS_STRING(piece), PyBytes_GET_SIZE(piece))) Py_RETURN_NONE;
        if (k < plan->n_labels) {
            const Value *label = &values[plan->labels[k]];
            if (!put_tag_value(&line, label->text, label->len)) Py_RETURN_NONE;
        }
    }
    for (Py_ssize_t k = 0; k < plan->n_outputs; k++) {
        const Output *o = &plan->outputs[k];
        const Entry *e = &plan->entries[o->entry];
        const Value *v = &values[o->entry];
        int ok = put(&line, o->name, o->name_len);
        switch (e->kind) {
        case K_FLOAT:
            ok = ok && (v->text ? put(&line, v->text, v->len) : put_double(&line, v->number));
            break;
        case K_INT:
            ok = ok && put_integer(&line, v->integer) && put(&line, "i", 1);
            break;
        case K_BOOL:
            ok = ok && (v->integer ? put(&line, "true", 4) : put(&line, "false", 5));
            break;
        case K_CHOICE:
            ok = ok && put(&line, e->choices[v->integer].line_text, e->choices[v->integer].line_len);
            break;
        case K_TEXT:
            ok = ok && put(&line, "\"", 1) && put(&line, v->text, v->len) && put(&line, "\"", 1);
            break;
        }
        if (!ok || !put(&line, ",", 1)) Py_RETURN_NONE;
    }
    if (!put(&line, "seq=", 4) || !put_integer(&line, seq) || !put(&line, "i ", 2) ||
        !put_integer(&line, ts_ms * 1000000LL))
        Py_RETURN_NONE;
    PyObject *text = PyUnicode_DecodeUTF8(line.data, line.len, NULL); /* the prefix may hold any id */
    if (text == NULL) return NULL;
    return Py_BuildValue("(NLL)", text, seq, ts_ms);
}

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "core._reading_kernel.Plan",
    .tp_doc = "A payload shape compiled for reading_line (see the module's source for its layout).",
    .tp_basicsize = sizeof(Plan),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)plan_init,
    .tp_dealloc = (destructor)plan_dealloc,
};

static PyMethodDef methods[] = {
    {"reading_line", (PyCFunction)(void (*)(void))reading_line, METH_FASTCALL,
     "reading_line(plan, payload, received_at, max_future_s, max_age_s, max_payload_bytes, prefix)"
     " -> (line, seq, ts_ms) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "core._reading_kernel",
    "JSON reading → its line of line protocol, for one planned payload shape (see core/reading_plans.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__reading_kernel(void) {
    if (PyType_Ready(&PlanType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&PlanType);
    if (PyModule_AddObject(m, "Plan", (PyObject *)&PlanType) < 0) {
        Py_DECREF(&PlanType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "TS", K_TS);
    PyModule_AddIntConstant(m, "SEQ", K_SEQ);
    PyModule_AddIntConstant(m, "FLOAT", K_FLOAT);
    PyModule_AddIntConstant(m, "INT", K_INT);
    PyModule_AddIntConstant(m, "BOOL", K_BOOL);
    PyModule_AddIntConstant(m, "NULL", K_NULL);
    PyModule_AddIntConstant(m, "CHOICE", K_CHOICE);
    PyModule_AddIntConstant(m, "LABEL", K_LABEL);
    PyModule_AddIntConstant(m, "TEXT", K_TEXT);
    return m;
}
