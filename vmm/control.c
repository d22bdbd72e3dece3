/* SPDX-License-Identifier: MIT */
/*
 * viommu-vmm's control socket: see control.h for the protocol.
 *
 * Threads: one server thread polls the listening socket, an eventfd and every
 * client. Fault records come from whatever thread the IOMMU reports them on
 * (a vCPU, the IOMMU's invalidation thread): control_fault formats the record
 * outside any lock, copies it into a ring of the last CTL_RING records under
 * a mutex and writes the eventfd (non-blocking). The server copies new records
 * to the clients that follow the stream; a client that reads too slowly loses
 * the records the ring overwrote and is told how many with a
 * {"event":"lost","count":N} line. Nothing a client does can block a vCPU.
 */
#define _GNU_SOURCE
#include "control.h"
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <viommu/fault.h>
#include <viommu/faultlog.h>
#include <viommu/inject.h>

#define CTL_MAX_CLIENTS 32u
#define CTL_RING        256u      /* fault records kept for the stream */
#define CTL_REC_MAX     640u      /* one record's JSON line */
#define CTL_OUT_SOFT    (64u << 10)  /* stop reading requests / copying records above this */
#define CTL_OUT_HARD    (4u << 20)   /* a client that never reads is dropped */
#define CTL_MAX_FIELDS  32u
#define CTL_MAX_STR     1024u
#define CTL_MAX_KEY     64u

/* ------------------------------------------------------------------------ */
/* Growable output buffer                                                   */

struct sbuf {
	char *p;
	size_t len, cap, off; /* off: bytes already sent */
	int oom;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
	if (b->oom || b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	sb_reserve(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char tmp[256];
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		sb_add(b, tmp, (size_t)n);
		return;
	}
	sb_reserve(b, (size_t)n);
	if (b->oom)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* A JSON string literal (quotes included). */
static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			sb_add(b, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			sb_printf(b, "\\u%04x", c);
		} else {
			sb_add(b, (const char *)&c, 1);
		}
	}
	sb_add(b, "\"", 1);
}

static void sb_hex(struct sbuf *b, uint64_t v)
{
	sb_printf(b, "\"0x%" PRIx64 "\"", v);
}

static void sb_consume(struct sbuf *b)
{
	if (b->off == b->len) {
		b->off = b->len = 0;
	} else if (b->off > b->cap / 2) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
}

/* ------------------------------------------------------------------------ */
/* A strict parser for one flat JSON object: string keys; values are strings,
 * integers or booleans. Anything else is rejected with a message.          */

enum jtype { J_STR, J_INT, J_BOOL };

struct jfield {
	char key[CTL_MAX_KEY];
	enum jtype type;
	char str[CTL_MAX_STR];
	int neg;      /* J_INT: negative */
	uint64_t mag; /* J_INT: magnitude */
	int b;        /* J_BOOL */
	int used;
};

struct jobj {
	unsigned n;
	struct jfield f[CTL_MAX_FIELDS];
};

struct jparser {
	const char *s, *end;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int jerr(struct jparser *p, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "bad JSON: %s", msg);
	return -1;
}

static void jws(struct jparser *p, const char **c)
{
	(void)p;
	while (**c == ' ' || **c == '\t' || **c == '\r' || **c == '\n')
		(*c)++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* *c points at the opening quote. */
static int jstring(struct jparser *p, const char **c, char *out, size_t max, const char *what)
{
	size_t n = 0;
	const char *s = *c + 1;
	for (;;) {
		if (s >= p->end || !*s)
			return jerr(p, "unterminated string in %s", what);
		unsigned char ch = (unsigned char)*s;
		char enc[4];
		size_t elen = 1;
		if (ch == '"') {
			s++;
			break;
		}
		if (ch < 0x20)
			return jerr(p, "control character 0x%02x in %s (escape it)", ch, what);
		if (ch != '\\') {
			enc[0] = (char)ch;
			s++;
		} else {
			char e = s[1];
			s += 2;
			switch (e) {
			case '"': enc[0] = '"'; break;
			case '\\': enc[0] = '\\'; break;
			case '/': enc[0] = '/'; break;
			case 'b': enc[0] = '\b'; break;
			case 'f': enc[0] = '\f'; break;
			case 'n': enc[0] = '\n'; break;
			case 'r': enc[0] = '\r'; break;
			case 't': enc[0] = '\t'; break;
			case 'u': {
				unsigned v = 0;
				for (int i = 0; i < 4; i++) {
					int h = s < p->end ? hexval(*s) : -1;
					if (h < 0)
						return jerr(p, "bad \\u escape in %s", what);
					v = v << 4 | (unsigned)h;
					s++;
				}
				if (v == 0 || (v >= 0xd800 && v <= 0xdfff))
					return jerr(p, "\\u%04x is not accepted in %s", v, what);
				if (v < 0x80) {
					enc[0] = (char)v;
				} else if (v < 0x800) {
					enc[0] = (char)(0xc0 | v >> 6);
					enc[1] = (char)(0x80 | (v & 0x3f));
					elen = 2;
				} else {
					enc[0] = (char)(0xe0 | v >> 12);
					enc[1] = (char)(0x80 | ((v >> 6) & 0x3f));
					enc[2] = (char)(0x80 | (v & 0x3f));
					elen = 3;
				}
				break;
			}
			default:
				return jerr(p, "bad escape in %s", what);
			}
		}
		if (n + elen >= max)
			return jerr(p, "%s longer than %zu bytes", what, max - 1);
		memcpy(out + n, enc, elen);
		n += elen;
	}
	out[n] = 0;
	*c = s;
	return 0;
}

static int json_parse(const char *line, size_t len, struct jobj *o, char *err, size_t errlen)
{
	struct jparser p = { .s = line, .end = line + len, .err = err, .errlen = errlen };
	const char *c = line;
	o->n = 0;
	jws(&p, &c);
	if (*c != '{')
		return jerr(&p, "a request is one JSON object per line, starting with '{'");
	c++;
	jws(&p, &c);
	if (*c == '}') {
		c++;
	} else {
		for (;;) {
			jws(&p, &c);
			if (*c != '"')
				return jerr(&p, "expected a string key");
			if (o->n >= CTL_MAX_FIELDS)
				return jerr(&p, "more than %u fields", CTL_MAX_FIELDS);
			struct jfield *f = &o->f[o->n];
			memset(f, 0, sizeof(*f));
			if (jstring(&p, &c, f->key, sizeof(f->key), "a key"))
				return -1;
			for (unsigned i = 0; i < o->n; i++)
				if (!strcmp(o->f[i].key, f->key))
					return jerr(&p, "duplicate key \"%s\"", f->key);
			jws(&p, &c);
			if (*c != ':')
				return jerr(&p, "expected ':' after key \"%s\"", f->key);
			c++;
			jws(&p, &c);
			if (*c == '"') {
				f->type = J_STR;
				if (jstring(&p, &c, f->str, sizeof(f->str), "a string value"))
					return -1;
			} else if (*c == '-' || (*c >= '0' && *c <= '9')) {
				f->type = J_INT;
				if (*c == '-') {
					f->neg = 1;
					c++;
				}
				if (!(*c >= '0' && *c <= '9'))
					return jerr(&p, "bad number for \"%s\"", f->key);
				if (*c == '0' && c[1] >= '0' && c[1] <= '9')
					return jerr(&p, "leading zero in the number for \"%s\"", f->key);
				uint64_t v = 0;
				while (*c >= '0' && *c <= '9') {
					unsigned d = (unsigned)(*c - '0');
					if (v > (UINT64_MAX - d) / 10)
						return jerr(&p, "the number for \"%s\" does not fit 64 bits", f->key);
					v = v * 10 + d;
					c++;
				}
				if (*c == '.' || *c == 'e' || *c == 'E')
					return jerr(&p, "only integers are accepted (\"%s\")", f->key);
				if (f->neg && v > (uint64_t)INT64_MAX + 1)
					return jerr(&p, "the number for \"%s\" does not fit 64 bits", f->key);
				f->mag = v;
			} else if (!strncmp(c, "true", 4)) {
				f->type = J_BOOL;
				f->b = 1;
				c += 4;
			} else if (!strncmp(c, "false", 5)) {
				f->type = J_BOOL;
				c += 5;
			} else if (!strncmp(c, "null", 4)) {
				return jerr(&p, "null is not accepted (\"%s\"): leave the field out", f->key);
			} else if (*c == '{' || *c == '[') {
				return jerr(&p, "nested objects and arrays are not accepted (\"%s\")", f->key);
			} else {
				return jerr(&p, "bad value for \"%s\"", f->key);
			}
			o->n++;
			jws(&p, &c);
			if (*c == ',') {
				c++;
				continue;
			}
			if (*c == '}') {
				c++;
				break;
			}
			return jerr(&p, "expected ',' or '}' after the value of \"%s\"", o->f[o->n - 1].key);
		}
	}
	jws(&p, &c);
	if (c != p.end)
		return jerr(&p, "trailing characters after the object");
	return 0;
}

static struct jfield *jget(struct jobj *o, const char *key)
{
	for (unsigned i = 0; i < o->n; i++)
		if (!strcmp(o->f[i].key, key)) {
			o->f[i].used = 1;
			return &o->f[i];
		}
	return NULL;
}

/* A non-negative integer: a JSON integer or a string (0x hex, 0 octal or decimal). */
static int jget_u64(struct jobj *o, const char *key, uint64_t max, uint64_t *out, int *present, char *err,
		    size_t errlen)
{
	struct jfield *f = jget(o, key);
	*present = f != NULL;
	if (!f)
		return 0;
	uint64_t v;
	if (f->type == J_INT) {
		if (f->neg && f->mag) {
			snprintf(err, errlen, "\"%s\" must not be negative", key);
			return -1;
		}
		v = f->mag;
	} else if (f->type == J_STR) {
		char *end;
		const char *s = f->str;
		if (!(*s >= '0' && *s <= '9')) {
			snprintf(err, errlen, "\"%s\" must be an integer or a hex string like \"0x1000\", not \"%.64s\"",
				 key, f->str);
			return -1;
		}
		errno = 0;
		v = strtoull(s, &end, 0);
		if (errno || *end) {
			snprintf(err, errlen, "\"%s\": \"%.64s\" is not a 64-bit integer", key, f->str);
			return -1;
		}
	} else {
		snprintf(err, errlen, "\"%s\" must be an integer or a hex string, not a boolean", key);
		return -1;
	}
	if (v > max) {
		snprintf(err, errlen, "\"%s\" is %" PRIu64 ", at most %" PRIu64 " allowed", key, v, max);
		return -1;
	}
	*out = v;
	return 0;
}

static const char *jget_str(struct jobj *o, const char *key, char *err, size_t errlen, int *bad)
{
	struct jfield *f = jget(o, key);
	*bad = 0;
	if (!f)
		return NULL;
	if (f->type != J_STR) {
		snprintf(err, errlen, "\"%s\" must be a string", key);
		*bad = 1;
		return NULL;
	}
	return f->str;
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */

static const char *const action_names[] = {
	[VIOMMU_INJECT_FAULT] = "fault",
	[VIOMMU_INJECT_CORRUPT_READ] = "corrupt-read",
	[VIOMMU_INJECT_DROP_INVAL] = "drop-inval",
	[VIOMMU_INJECT_DELAY_INVAL] = "delay-inval",
	[VIOMMU_INJECT_LOSE_IRQ] = "lose-irq",
	[VIOMMU_INJECT_DROP_COMPLETION] = "drop-completion",
	[VIOMMU_INJECT_DELAY_COMPLETION] = "delay-completion",
};
#define NR_ACTIONS (sizeof(action_names) / sizeof(action_names[0]))

static const char *const trigger_names[] = {
	[VIOMMU_INJECT_ALWAYS] = "always",
	[VIOMMU_INJECT_NTH] = "nth",
	[VIOMMU_INJECT_EVERY_NTH] = "every-nth",
	[VIOMMU_INJECT_PROBABILITY] = "probability",
};
#define NR_TRIGGERS (sizeof(trigger_names) / sizeof(trigger_names[0]))

static const char *name_of(const char *const *tab, size_t n, unsigned v)
{
	return v < n && tab[v] ? tab[v] : "unknown";
}

/* "BB:DD.F" or "SSSS:BB:DD.F", hex. */
static int parse_rid(const char *s, struct viommu_rid *rid)
{
	unsigned seg = 0, bus, dev, fn;
	int n = -1;
	if (sscanf(s, "%4x:%2x:%2x.%1x%n", &seg, &bus, &dev, &fn, &n) == 4 && n == (int)strlen(s)) {
		/* segment form */
	} else {
		seg = 0;
		n = -1;
		if (!(sscanf(s, "%2x:%2x.%1x%n", &bus, &dev, &fn, &n) == 3 && n == (int)strlen(s)))
			return -1;
	}
	if (dev > 31 || fn > 7 || strchr(s, ' ') || strchr(s, '-') || strchr(s, '+'))
		return -1;
	rid->segment = (uint16_t)seg;
	rid->bus = (uint8_t)bus;
	rid->devfn = (uint8_t)(dev << 3 | fn);
	return 0;
}

static void access_str(uint32_t a, char *out)
{
	char *p = out;
	if (a & VIOMMU_ACCESS_READ)
		*p++ = 'r';
	if (a & VIOMMU_ACCESS_WRITE)
		*p++ = 'w';
	if (a & VIOMMU_ACCESS_EXEC)
		*p++ = 'x';
	if (a & VIOMMU_ACCESS_PRIV)
		*p++ = 'p';
	*p = 0;
}

/* ------------------------------------------------------------------------ */
/* Server state                                                             */

struct client {
	int fd;
	char in[CONTROL_MAX_LINE + 2];
	size_t in_len;
	int discarding;  /* skipping the rest of an over-long line */
	struct sbuf out;
	int follow;
	uint64_t next;   /* next fault record to send (ring position) */
	int closing;     /* close once out is flushed */
};

struct vmm_control {
	struct vmm *vm;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int lfd, efd;
	pthread_t thread;
	int started;
	volatile int stop;

	pthread_mutex_t lock; /* the ring */
	char ring[CTL_RING][CTL_REC_MAX];
	uint64_t produced;

	struct client *clients[CTL_MAX_CLIENTS];
	struct jobj req; /* the server thread's parse buffer */
	char line[CONTROL_MAX_LINE + 2];
};

void control_fault(struct vmm_control *c, const struct viommu_fault_record *rec)
{
	if (!c)
		return;
	char line[CTL_REC_MAX];
	int n = viommu_fault_record_json(rec, line, sizeof(line));
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof(line)) /* cut short: keep it a line */
		line[sizeof(line) - 2] = '\n';
	pthread_mutex_lock(&c->lock);
	memcpy(c->ring[c->produced % CTL_RING], line, sizeof(line));
	c->produced++;
	pthread_mutex_unlock(&c->lock);
	uint64_t one = 1;
	ssize_t w = write(c->efd, &one, sizeof(one)); /* non-blocking: EAGAIN means already signalled */
	(void)w;
}

static void reply_err(struct client *cl, const char *msg)
{
	sb_add(&cl->out, "{\"ok\":false,\"error\":", 20);
	sb_str(&cl->out, msg);
	sb_add(&cl->out, "}\n", 2);
}

static void cmd_stats(struct vmm_control *c, struct client *cl)
{
	struct viommu_stats st;
	memset(&st, 0, sizeof(st));
	viommu_get_stats(c->vm->iommu, &st);
	int rules = viommu_inject_list(c->vm->iommu, NULL, 0);
	struct sbuf *b = &cl->out;
	sb_printf(b,
		  "{\"ok\":true,\"translations\":%" PRIu64 ",\"iotlb_hits\":%" PRIu64 ",\"iotlb_misses\":%" PRIu64
		  ",\"iotlb_evictions\":%" PRIu64 ",\"pwc_hits\":%" PRIu64 ",\"pwc_misses\":%" PRIu64
		  ",\"ntlb_hits\":%" PRIu64 ",\"ntlb_misses\":%" PRIu64,
		  st.translations, st.iotlb_hits, st.iotlb_misses, st.iotlb_evictions, st.pwc_hits, st.pwc_misses,
		  st.ntlb_hits, st.ntlb_misses);
	sb_printf(b, ",\"walks\":%" PRIu64 ",\"refs\":%" PRIu64 ",\"faults\":%" PRIu64 ",\"invalidations\":%" PRIu64,
		  st.walks, st.refs, st.faults, st.invalidations);
	sb_printf(b, ",\"irqs_remapped\":%" PRIu64 ",\"irqs_passed\":%" PRIu64 ",\"irq_faults\":%" PRIu64,
		  st.irqs_remapped, st.irqs_passed, st.irq_faults);
	pthread_mutex_lock(&c->lock);
	uint64_t streamed = c->produced;
	pthread_mutex_unlock(&c->lock);
	sb_printf(b, ",\"fault_records_seen\":%" PRIu64 ",\"inject_rules\":%d,\"iommu\":", streamed, rules < 0 ? 0 : rules);
	sb_str(b, c->vm->opts.vtd ? "vtd" : "none");
	sb_add(b, "}\n", 2);
}

/* Copy ring records [from, to) into a reply array (no trailing newlines). */
static void cmd_faults(struct vmm_control *c, struct client *cl, struct jobj *o, char *err, size_t errlen)
{
	struct jfield *f = jget(o, "follow");
	if (f && f->type != J_BOOL) {
		snprintf(err, errlen, "\"follow\" must be true or false");
		reply_err(cl, err);
		return;
	}
	pthread_mutex_lock(&c->lock);
	uint64_t produced = c->produced;
	if (f && f->b) {
		cl->follow = 1;
		cl->next = produced;
		pthread_mutex_unlock(&c->lock);
		sb_printf(&cl->out, "{\"ok\":true,\"follow\":true,\"seen\":%" PRIu64 "}\n", produced);
		return;
	}
	uint64_t from = produced > CTL_RING ? produced - CTL_RING : 0;
	sb_printf(&cl->out, "{\"ok\":true,\"seen\":%" PRIu64 ",\"faults\":[", produced);
	for (uint64_t i = from; i < produced; i++) {
		const char *r = c->ring[i % CTL_RING];
		size_t n = strnlen(r, CTL_REC_MAX);
		while (n && (r[n - 1] == '\n'))
			n--;
		if (i != from)
			sb_add(&cl->out, ",", 1);
		sb_add(&cl->out, r, n);
	}
	pthread_mutex_unlock(&c->lock);
	sb_add(&cl->out, "]}\n", 3);
}

static int rule_from_json(struct jobj *o, struct viommu_inject_rule *r, char *err, size_t errlen)
{
	int bad, present;
	uint64_t v;
	memset(r, 0, sizeof(*r));
	r->size = sizeof(*r);
	r->pasid = VIOMMU_NO_PASID;
	r->last = UINT64_MAX;

	const char *s = jget_str(o, "action", err, errlen, &bad);
	if (bad)
		return -1;
	if (!s) {
		snprintf(err, errlen, "inject-add needs \"action\": fault, corrupt-read, drop-inval, delay-inval, "
				      "lose-irq, drop-completion or delay-completion");
		return -1;
	}
	for (unsigned i = 1; i < NR_ACTIONS; i++)
		if (action_names[i] && !strcmp(s, action_names[i]))
			r->action = (enum viommu_inject_action)i;
	if (!r->action) {
		snprintf(err, errlen, "unknown action \"%.64s\" (fault, corrupt-read, drop-inval, delay-inval, "
				      "lose-irq, drop-completion, delay-completion)", s);
		return -1;
	}

	s = jget_str(o, "rid", err, errlen, &bad);
	if (bad)
		return -1;
	if (s) {
		if (parse_rid(s, &r->rid)) {
			snprintf(err, errlen, "bad \"rid\" \"%.64s\": want BB:DD.F or SSSS:BB:DD.F in hex", s);
			return -1;
		}
		r->match |= VIOMMU_INJECT_M_RID;
	}

	struct jfield *pf = jget(o, "pasid");
	if (pf && pf->type == J_STR && !strcmp(pf->str, "none")) {
		r->pasid = VIOMMU_NO_PASID;
		r->match |= VIOMMU_INJECT_M_PASID;
	} else if (pf) {
		pf->used = 0;
		if (jget_u64(o, "pasid", 0xfffff, &v, &present, err, errlen))
			return -1;
		r->pasid = (uint32_t)v;
		r->match |= VIOMMU_INJECT_M_PASID;
	}

	int pfirst, plast;
	if (jget_u64(o, "first", UINT64_MAX, &r->first, &pfirst, err, errlen) ||
	    jget_u64(o, "last", UINT64_MAX, &r->last, &plast, err, errlen))
		return -1;
	if (pfirst || plast) {
		if (r->first > r->last) {
			snprintf(err, errlen, "\"first\" (0x%" PRIx64 ") is above \"last\" (0x%" PRIx64 ")", r->first,
				 r->last);
			return -1;
		}
		r->match |= VIOMMU_INJECT_M_RANGE;
	}

	s = jget_str(o, "access", err, errlen, &bad);
	if (bad)
		return -1;
	if (s) {
		if (!*s) {
			snprintf(err, errlen, "\"access\" is empty: give some of r, w, x, p");
			return -1;
		}
		for (const char *p = s; *p; p++) {
			switch (*p) {
			case 'r': r->access |= VIOMMU_ACCESS_READ; break;
			case 'w': r->access |= VIOMMU_ACCESS_WRITE; break;
			case 'x': r->access |= VIOMMU_ACCESS_EXEC; break;
			case 'p': r->access |= VIOMMU_ACCESS_PRIV; break;
			default:
				snprintf(err, errlen, "bad \"access\" \"%.32s\": letters r, w, x, p only", s);
				return -1;
			}
		}
		r->match |= VIOMMU_INJECT_M_ACCESS;
	}

	s = jget_str(o, "trigger", err, errlen, &bad);
	if (bad)
		return -1;
	if (s) {
		unsigned i;
		for (i = 0; i < NR_TRIGGERS; i++)
			if (!strcmp(s, trigger_names[i]))
				break;
		if (i == NR_TRIGGERS) {
			snprintf(err, errlen, "unknown trigger \"%.64s\" (always, nth, every-nth, probability)", s);
			return -1;
		}
		r->trigger = (enum viommu_inject_trigger)i;
	}
	if (jget_u64(o, "n", UINT64_MAX, &r->n, &present, err, errlen))
		return -1;
	if ((r->trigger == VIOMMU_INJECT_NTH || r->trigger == VIOMMU_INJECT_EVERY_NTH) && !present) {
		snprintf(err, errlen, "trigger %s needs \"n\" (1 or more)", trigger_names[r->trigger]);
		return -1;
	}
	if (jget_u64(o, "ppm", 1000000, &v, &present, err, errlen))
		return -1;
	r->ppm = (uint32_t)v;
	if (r->trigger == VIOMMU_INJECT_PROBABILITY && !present) {
		snprintf(err, errlen, "trigger probability needs \"ppm\" (0 to 1000000)");
		return -1;
	}
	if (jget_u64(o, "seed", UINT64_MAX, &r->seed, &present, err, errlen) ||
	    jget_u64(o, "max_fires", UINT64_MAX, &r->max_fires, &present, err, errlen) ||
	    jget_u64(o, "xor_mask", UINT64_MAX, &r->xor_mask, &present, err, errlen) ||
	    jget_u64(o, "delay_us", UINT64_MAX, &r->delay_us, &present, err, errlen))
		return -1;

	s = jget_str(o, "reason", err, errlen, &bad);
	if (bad)
		return -1;
	if (s) {
		for (unsigned i = 1; i < VIOMMU_FAULT_REASON_COUNT; i++) {
			const char *nm = viommu_fault_reason_name((enum viommu_fault_reason)i);
			if (nm && !strcmp(nm, s))
				r->reason = (enum viommu_fault_reason)i;
		}
		if (!r->reason) {
			snprintf(err, errlen, "unknown fault reason \"%.64s\" (e.g. %s, %s)", s,
				 viommu_fault_reason_name(VIOMMU_FAULT_PERMISSION),
				 viommu_fault_reason_name(VIOMMU_FAULT_NOT_PRESENT));
			return -1;
		}
	}
	if (r->action == VIOMMU_INJECT_FAULT && !r->reason) {
		snprintf(err, errlen, "action fault needs a \"reason\" (e.g. \"%s\")",
			 viommu_fault_reason_name(VIOMMU_FAULT_PERMISSION));
		return -1;
	}
	if (r->action == VIOMMU_INJECT_CORRUPT_READ && !r->xor_mask) {
		snprintf(err, errlen, "action corrupt-read needs a non-zero \"xor_mask\"");
		return -1;
	}
	if ((r->action == VIOMMU_INJECT_DELAY_INVAL || r->action == VIOMMU_INJECT_DELAY_COMPLETION) &&
	    (r->delay_us < 1 || r->delay_us > 60000000)) {
		snprintf(err, errlen, "action %s needs \"delay_us\" from 1 to 60000000", action_names[r->action]);
		return -1;
	}
	return 0;
}

static void rule_json(struct sbuf *b, const struct viommu_inject_info *in)
{
	const struct viommu_inject_rule *r = &in->rule;
	sb_printf(b, "{\"id\":%u,\"action\":", in->id);
	sb_str(b, name_of(action_names, NR_ACTIONS, r->action));
	if (r->match & VIOMMU_INJECT_M_RID)
		sb_printf(b, ",\"rid\":\"%04x:%02x:%02x.%x\"", r->rid.segment, r->rid.bus, r->rid.devfn >> 3,
			  r->rid.devfn & 7);
	if (r->match & VIOMMU_INJECT_M_PASID) {
		if (r->pasid == VIOMMU_NO_PASID)
			sb_add(b, ",\"pasid\":\"none\"", 15);
		else
			sb_printf(b, ",\"pasid\":%u", r->pasid);
	}
	if (r->match & VIOMMU_INJECT_M_RANGE) {
		sb_add(b, ",\"first\":", 9);
		sb_hex(b, r->first);
		sb_add(b, ",\"last\":", 8);
		sb_hex(b, r->last);
	}
	if (r->match & VIOMMU_INJECT_M_ACCESS) {
		char a[8];
		access_str(r->access, a);
		sb_add(b, ",\"access\":", 10);
		sb_str(b, a);
	}
	sb_add(b, ",\"trigger\":", 11);
	sb_str(b, name_of(trigger_names, NR_TRIGGERS, r->trigger));
	if (r->trigger == VIOMMU_INJECT_NTH || r->trigger == VIOMMU_INJECT_EVERY_NTH)
		sb_printf(b, ",\"n\":%" PRIu64, r->n);
	if (r->trigger == VIOMMU_INJECT_PROBABILITY)
		sb_printf(b, ",\"ppm\":%u,\"seed\":%" PRIu64, r->ppm, r->seed);
	if (r->max_fires)
		sb_printf(b, ",\"max_fires\":%" PRIu64, r->max_fires);
	if (r->action == VIOMMU_INJECT_FAULT) {
		const char *nm = viommu_fault_reason_name(r->reason);
		sb_add(b, ",\"reason\":", 10);
		sb_str(b, nm ? nm : "unknown");
	}
	if (r->action == VIOMMU_INJECT_CORRUPT_READ) {
		sb_add(b, ",\"xor_mask\":", 12);
		sb_hex(b, r->xor_mask);
	}
	if (r->action == VIOMMU_INJECT_DELAY_INVAL || r->action == VIOMMU_INJECT_DELAY_COMPLETION)
		sb_printf(b, ",\"delay_us\":%" PRIu64, r->delay_us);
	sb_printf(b, ",\"matched\":%" PRIu64 ",\"fired\":%" PRIu64 "}", in->matched, in->fired);
}

static int check_unused(struct jobj *o, const char *cmd, char *err, size_t errlen)
{
	for (unsigned i = 0; i < o->n; i++)
		if (!o->f[i].used) {
			snprintf(err, errlen, "unknown field \"%.64s\" for %.32s", o->f[i].key, cmd);
			return -1;
		}
	return 0;
}

static void cmd_inject_add(struct vmm_control *c, struct client *cl, struct jobj *o, char *err, size_t errlen)
{
	struct viommu_inject_rule r;
	if (rule_from_json(o, &r, err, errlen) || check_unused(o, "inject-add", err, errlen)) {
		reply_err(cl, err);
		return;
	}
	uint32_t id = 0;
	int ret = viommu_inject_add(c->vm->iommu, &r, &id);
	if (ret) {
		snprintf(err, errlen, "the library refused the rule: %s%s", strerror(-ret),
			 ret == -ENOSPC ? " (too many rules)" : "");
		reply_err(cl, err);
		return;
	}
	sb_printf(&cl->out, "{\"ok\":true,\"id\":%u}\n", id);
}

static void cmd_inject_list(struct vmm_control *c, struct client *cl)
{
	struct viommu_inject_info *infos = NULL;
	int n = viommu_inject_list(c->vm->iommu, NULL, 0);
	for (int tries = 0; n > 0 && tries < 4; tries++) {
		free(infos);
		infos = calloc((size_t)n + 8, sizeof(*infos));
		if (!infos) {
			reply_err(cl, "out of memory");
			return;
		}
		int m = viommu_inject_list(c->vm->iommu, infos, (uint32_t)n + 8);
		if (m <= n + 8) {
			n = m;
			break;
		}
		n = m;
	}
	if (n < 0) {
		free(infos);
		reply_err(cl, "viommu_inject_list failed");
		return;
	}
	sb_printf(&cl->out, "{\"ok\":true,\"count\":%d,\"rules\":[", n);
	for (int i = 0; i < n; i++) {
		if (i)
			sb_add(&cl->out, ",", 1);
		rule_json(&cl->out, &infos[i]);
	}
	sb_add(&cl->out, "]}\n", 3);
	free(infos);
}

static void cmd_inject_remove(struct vmm_control *c, struct client *cl, struct jobj *o, char *err, size_t errlen)
{
	uint64_t id;
	int present;
	if (jget_u64(o, "id", UINT32_MAX, &id, &present, err, errlen) || check_unused(o, "inject-remove", err, errlen)) {
		reply_err(cl, err);
		return;
	}
	if (!present) {
		reply_err(cl, "inject-remove needs \"id\"");
		return;
	}
	int ret = viommu_inject_remove(c->vm->iommu, (uint32_t)id);
	if (ret == -ENOENT) {
		snprintf(err, errlen, "no rule with id %" PRIu64, id);
		reply_err(cl, err);
		return;
	}
	if (ret) {
		snprintf(err, errlen, "viommu_inject_remove: %s", strerror(-ret));
		reply_err(cl, err);
		return;
	}
	sb_printf(&cl->out, "{\"ok\":true,\"id\":%" PRIu64 "}\n", id);
}

static void handle_line(struct vmm_control *c, struct client *cl, const char *line, size_t len)
{
	char err[512];
	size_t i;
	for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'); i++)
		;
	if (i == len)
		return; /* blank lines are ignored */
	if (memchr(line, 0, len)) {
		reply_err(cl, "bad JSON: a NUL byte in the request");
		return;
	}
	if (len > CONTROL_MAX_LINE) {
		snprintf(err, sizeof(err), "request line longer than %u bytes: ignored", CONTROL_MAX_LINE);
		reply_err(cl, err);
		return;
	}
	/* A NUL-terminated copy: the parser never looks past the line. */
	memcpy(c->line, line, len);
	c->line[len] = 0;
	struct jobj *o = &c->req;
	if (json_parse(c->line, len, o, err, sizeof(err))) {
		reply_err(cl, err);
		return;
	}
	int bad;
	const char *cmd = jget_str(o, "cmd", err, sizeof(err), &bad);
	if (bad) {
		reply_err(cl, err);
		return;
	}
	if (!cmd) {
		reply_err(cl, "the request has no \"cmd\" (stats, faults, inject-add, inject-list, inject-remove)");
		return;
	}
	if (!strcmp(cmd, "stats")) {
		if (check_unused(o, cmd, err, sizeof(err)))
			reply_err(cl, err);
		else
			cmd_stats(c, cl);
	} else if (!strcmp(cmd, "faults")) {
		jget(o, "follow");
		if (check_unused(o, cmd, err, sizeof(err))) {
			reply_err(cl, err);
			return;
		}
		cmd_faults(c, cl, o, err, sizeof(err));
	} else if (!strcmp(cmd, "inject-add")) {
		cmd_inject_add(c, cl, o, err, sizeof(err));
	} else if (!strcmp(cmd, "inject-list")) {
		if (check_unused(o, cmd, err, sizeof(err)))
			reply_err(cl, err);
		else
			cmd_inject_list(c, cl);
	} else if (!strcmp(cmd, "inject-remove")) {
		cmd_inject_remove(c, cl, o, err, sizeof(err));
	} else {
		snprintf(err, sizeof(err),
			 "unknown command \"%.64s\" (stats, faults, inject-add, inject-list, inject-remove)", cmd);
		reply_err(cl, err);
	}
}

/* ------------------------------------------------------------------------ */
/* The server thread                                                        */

static void client_free(struct client *cl)
{
	if (!cl)
		return;
	close(cl->fd);
	free(cl->out.p);
	free(cl);
}

static void client_read(struct vmm_control *c, struct client *cl)
{
	for (;;) {
		if (cl->out.len - cl->out.off > CTL_OUT_SOFT)
			return; /* let it read its replies first */
		size_t room = sizeof(cl->in) - cl->in_len;
		ssize_t n = recv(cl->fd, cl->in + cl->in_len, room, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				cl->closing = 2;
			return;
		}
		if (n == 0) {
			/* EOF: answer what came, then close. */
			cl->closing = 1;
			return;
		}
		cl->in_len += (size_t)n;
		size_t start = 0;
		for (size_t i = 0; i < cl->in_len; i++) {
			if (cl->in[i] != '\n')
				continue;
			if (cl->discarding)
				cl->discarding = 0;
			else
				handle_line(c, cl, cl->in + start, i - start);
			start = i + 1;
		}
		memmove(cl->in, cl->in + start, cl->in_len - start);
		cl->in_len -= start;
		if (cl->in_len > CONTROL_MAX_LINE) {
			if (!cl->discarding) {
				char msg[96];
				snprintf(msg, sizeof(msg), "request line longer than %u bytes: ignored", CONTROL_MAX_LINE);
				reply_err(cl, msg);
			}
			cl->discarding = 1;
			cl->in_len = 0;
		}
	}
}

static void client_write(struct client *cl)
{
	while (cl->out.off < cl->out.len) {
		ssize_t n = send(cl->fd, cl->out.p + cl->out.off, cl->out.len - cl->out.off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				cl->closing = 2;
			break;
		}
		cl->out.off += (size_t)n;
	}
	sb_consume(&cl->out);
}

/* Copy new ring records to a follower, as far as its buffer allows. */
static void client_stream(struct vmm_control *c, struct client *cl)
{
	if (!cl->follow)
		return;
	pthread_mutex_lock(&c->lock);
	uint64_t produced = c->produced;
	if (produced - cl->next > CTL_RING) {
		uint64_t lost = produced - CTL_RING - cl->next;
		sb_printf(&cl->out, "{\"event\":\"lost\",\"count\":%" PRIu64 "}\n", lost);
		cl->next = produced - CTL_RING;
	}
	while (cl->next < produced && cl->out.len - cl->out.off < CTL_OUT_SOFT) {
		const char *r = c->ring[cl->next % CTL_RING];
		sb_add(&cl->out, r, strnlen(r, CTL_REC_MAX));
		cl->next++;
	}
	pthread_mutex_unlock(&c->lock);
}

static void accept_clients(struct vmm_control *c)
{
	for (;;) {
		int fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		unsigned i;
		for (i = 0; i < CTL_MAX_CLIENTS && c->clients[i]; i++)
			;
		struct client *cl = i < CTL_MAX_CLIENTS ? calloc(1, sizeof(*cl)) : NULL;
		if (!cl) {
			static const char busy[] = "{\"ok\":false,\"error\":\"too many control clients\"}\n";
			ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
			(void)w;
			close(fd);
			continue;
		}
		cl->fd = fd;
		c->clients[i] = cl;
	}
}

static void *server_thread(void *arg)
{
	struct vmm_control *c = arg;
	struct pollfd pfd[CTL_MAX_CLIENTS + 2];
	int idx[CTL_MAX_CLIENTS + 2];
	while (!c->stop) {
		unsigned n = 0;
		pfd[n++] = (struct pollfd){ .fd = c->efd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = c->lfd, .events = POLLIN };
		for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++) {
			struct client *cl = c->clients[i];
			if (!cl)
				continue;
			short ev = 0;
			if (!cl->closing && cl->out.len - cl->out.off <= CTL_OUT_SOFT)
				ev |= POLLIN;
			if (cl->out.off < cl->out.len)
				ev |= POLLOUT;
			idx[n] = (int)i;
			pfd[n++] = (struct pollfd){ .fd = cl->fd, .events = ev };
		}
		int r = poll(pfd, n, 1000);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			vmm_log(c->vm, "control socket: poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents & POLLIN) {
			uint64_t v;
			ssize_t rd = read(c->efd, &v, sizeof(v));
			(void)rd;
		}
		if (pfd[1].revents & POLLIN)
			accept_clients(c);
		for (unsigned k = 2; k < n; k++) {
			struct client *cl = c->clients[idx[k]];
			if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
				client_read(c, cl);
			if (pfd[k].revents & POLLERR)
				cl->closing = 2;
		}
		/* Stream records and flush every client. */
		for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++) {
			struct client *cl = c->clients[i];
			if (!cl)
				continue;
			if (cl->closing != 2)
				client_stream(c, cl);
			if (cl->closing != 2)
				client_write(cl);
			int done = cl->closing == 2 || (cl->closing == 1 && cl->out.off == cl->out.len) ||
				   cl->out.oom || cl->out.len - cl->out.off > CTL_OUT_HARD;
			if (done) {
				client_free(cl);
				c->clients[i] = NULL;
			}
		}
	}
	return NULL;
}

int control_start(struct vmm *vm, const char *path, struct vmm_control **out)
{
	*out = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		vmm_log(vm, "--control %s: the path is longer than %zu bytes", path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	struct vmm_control *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->vm = vm;
	c->lfd = c->efd = -1;
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	pthread_mutex_init(&c->lock, NULL);
	int err;

	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			vmm_log(vm, "--control %s: exists and is not a socket", path);
			err = -EEXIST;
			goto fail;
		}
		/* A live VMM there answers a connect; a stale file does not. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			vmm_log(vm, "--control %s: another process is serving this socket", path);
			err = -EADDRINUSE;
			goto fail;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(c->lfd, 16) < 0) {
		err = -errno;
		vmm_log(vm, "--control %s: %s", path, strerror(errno));
		goto fail;
	}
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd < 0) {
		err = -errno;
		vmm_log(vm, "--control: eventfd: %s", strerror(errno));
		unlink(path);
		goto fail;
	}
	/* The server thread takes no signals: SIGINT and friends go to the
	 * main thread, SIGUSR1 to the vCPUs. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = -pthread_create(&c->thread, NULL, server_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		vmm_log(vm, "--control: cannot start its thread: %s", strerror(-err));
		unlink(path);
		goto fail;
	}
	c->started = 1;
	*out = c;
	return 0;
fail:
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->efd >= 0)
		close(c->efd);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return err;
}

void control_stop(struct vmm_control *c)
{
	if (!c)
		return;
	if (c->started) {
		c->stop = 1;
		uint64_t one = 1;
		ssize_t w = write(c->efd, &one, sizeof(one));
		(void)w;
		pthread_join(c->thread, NULL);
	}
	/* Last words to followers: whatever is still buffered, best effort. */
	for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct client *cl = c->clients[i];
		if (!cl)
			continue;
		client_stream(c, cl);
		client_write(cl);
		client_free(cl);
	}
	close(c->lfd);
	close(c->efd);
	unlink(c->path);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
