#include "agent/resolved.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <systemd/sd-bus.h>

#include "zg_err.h"

#define DEST "org.freedesktop.resolve1"
#define PATH "/org/freedesktop/resolve1"
#define IFACE "org.freedesktop.resolve1.Manager"

struct resolved {
	sd_bus *bus;
};

static int bus_err(const char *what, const sd_bus_error *e, int r, char *err, size_t errlen)
{
	if (e != NULL && sd_bus_error_is_set(e))
		zg_seterr(err, errlen, "%s: %s", what, e->message ? e->message : e->name);
	else
		zg_seterr(err, errlen, "%s: %s", what, strerror(r < 0 ? -r : r));
	return ZG_ERR_IO;
}

int resolved_open(struct resolved **pr, char *err, size_t errlen)
{
	struct resolved *r = calloc(1, sizeof(*r));
	int rv;

	if (r == NULL)
		return ZG_ERR_NOMEM;
	rv = sd_bus_open_system(&r->bus);
	if (rv < 0) {
		free(r);
		return bus_err("system D-Bus", NULL, rv, err, errlen);
	}
	*pr = r;
	return 0;
}

void resolved_close(struct resolved *r)
{
	if (r == NULL)
		return;
	sd_bus_flush_close_unref(r->bus);
	free(r);
}

int resolved_present(struct resolved *r)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL;
	int has = 0, rv;

	rv = sd_bus_call_method(r->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
				"org.freedesktop.DBus", "NameHasOwner", &e, &m, "s", DEST);
	if (rv >= 0 && sd_bus_message_read(m, "b", &has) < 0)
		has = 0;
	sd_bus_error_free(&e);
	sd_bus_message_unref(m);
	return rv >= 0 && has;
}

/* Sends a prepared method call with the agent's timeout. */
static int call(struct resolved *r, sd_bus_message *m, const char *what, char *err, size_t errlen)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	int rv = sd_bus_call(r->bus, m, RESOLVED_TIMEOUT_US, &e, NULL);

	if (rv < 0) {
		(void)bus_err(what, &e, rv, err, errlen);
		sd_bus_error_free(&e);
		return ZG_ERR_IO;
	}
	return 0;
}

int resolved_apply(struct resolved *r, int ifindex, const struct resolved_server *s, size_t ns,
		   const char *const *internal, size_t ninternal, const char *const *search,
		   size_t nsearch, char *err, size_t errlen)
{
	sd_bus_message *m = NULL;
	int rv, every = 0;
	size_t i;

	/* SetLinkDNS(i ifindex, a(iay) addresses) */
	rv = sd_bus_message_new_method_call(r->bus, &m, DEST, PATH, IFACE, "SetLinkDNS");
	if (rv >= 0)
		rv = sd_bus_message_append(m, "i", ifindex);
	if (rv >= 0)
		rv = sd_bus_message_open_container(m, 'a', "(iay)");
	for (i = 0; rv >= 0 && i < ns; i++) {
		rv = sd_bus_message_open_container(m, 'r', "iay");
		if (rv >= 0)
			rv = sd_bus_message_append(m, "i", s[i].family == 6 ? AF_INET6 : AF_INET);
		if (rv >= 0)
			rv = sd_bus_message_append_array(m, 'y', s[i].addr,
							 s[i].family == 6 ? 16 : 4);
		if (rv >= 0)
			rv = sd_bus_message_close_container(m);
	}
	if (rv >= 0)
		rv = sd_bus_message_close_container(m);
	if (rv < 0) {
		sd_bus_message_unref(m);
		return bus_err("SetLinkDNS", NULL, rv, err, errlen);
	}
	rv = call(r, m, "SetLinkDNS", err, errlen);
	sd_bus_message_unref(m);
	m = NULL;
	if (rv != 0)
		return rv;

	/* SetLinkDomains(i ifindex, a(sb) domains): routing-only for the
	 * internal domains, the root as "." */
	rv = sd_bus_message_new_method_call(r->bus, &m, DEST, PATH, IFACE, "SetLinkDomains");
	if (rv >= 0)
		rv = sd_bus_message_append(m, "i", ifindex);
	if (rv >= 0)
		rv = sd_bus_message_open_container(m, 'a', "(sb)");
	for (i = 0; rv >= 0 && i < ninternal; i++) {
		if (internal[i][0] == '\0')
			every = 1;
		rv = sd_bus_message_append(m, "(sb)", internal[i][0] ? internal[i] : ".", 1);
	}
	for (i = 0; rv >= 0 && i < nsearch; i++)
		rv = sd_bus_message_append(m, "(sb)", search[i], 0);
	if (rv >= 0)
		rv = sd_bus_message_close_container(m);
	if (rv < 0) {
		sd_bus_message_unref(m);
		return bus_err("SetLinkDomains", NULL, rv, err, errlen);
	}
	rv = call(r, m, "SetLinkDomains", err, errlen);
	sd_bus_message_unref(m);
	m = NULL;
	if (rv != 0)
		return rv;

	/* SetLinkDefaultRoute(i ifindex, b): other names stay with the
	 * system's resolvers unless the relay claims every name */
	rv = sd_bus_message_new_method_call(r->bus, &m, DEST, PATH, IFACE, "SetLinkDefaultRoute");
	if (rv >= 0)
		rv = sd_bus_message_append(m, "ib", ifindex, every);
	if (rv < 0) {
		sd_bus_message_unref(m);
		return bus_err("SetLinkDefaultRoute", NULL, rv, err, errlen);
	}
	rv = call(r, m, "SetLinkDefaultRoute", err, errlen);
	sd_bus_message_unref(m);
	return rv;
}

int resolved_revert(struct resolved *r, int ifindex, char *err, size_t errlen)
{
	sd_bus_message *m = NULL;
	int rv = sd_bus_message_new_method_call(r->bus, &m, DEST, PATH, IFACE, "RevertLink");

	if (rv >= 0)
		rv = sd_bus_message_append(m, "i", ifindex);
	if (rv < 0) {
		sd_bus_message_unref(m);
		return bus_err("RevertLink", NULL, rv, err, errlen);
	}
	rv = call(r, m, "RevertLink", err, errlen);
	sd_bus_message_unref(m);
	return rv;
}
