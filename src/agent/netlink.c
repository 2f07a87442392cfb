#include "agent/netlink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

#include "zg_err.h"

struct nl {
	struct mnl_socket *sock;
	uint32_t portid;
	uint32_t seq;
	/* MNL_SOCKET_BUFFER_SIZE is a sysconf() call in newer libmnl */
	char buf[8192];
};

int nl_open(struct nl **pnl)
{
	struct nl *nl = calloc(1, sizeof(*nl));

	if (!nl)
		return ZG_ERR_NOMEM;
	nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl->sock || mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;
		if (nl->sock)
			mnl_socket_close(nl->sock);
		free(nl);
		errno = e;
		return ZG_ERR_IO;
	}
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = (uint32_t)time(NULL);
	*pnl = nl;
	return 0;
}

void nl_close(struct nl *nl)
{
	if (!nl)
		return;
	mnl_socket_close(nl->sock);
	free(nl);
}

/* Sends nlh and runs cb over the answer until the kernel's ACK or error. */
static int talk(struct nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	ssize_t n;
	int r;

	nlh->nlmsg_seq = ++nl->seq;
	nlh->nlmsg_flags |= NLM_F_ACK;
	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return ZG_ERR_IO;
	for (;;) {
		n = mnl_socket_recvfrom(nl->sock, nl->buf, sizeof(nl->buf));
		if (n < 0)
			return ZG_ERR_IO;
		r = mnl_cb_run(nl->buf, (size_t)n, nl->seq, nl->portid, cb, data);
		if (r < 0)
			return ZG_ERR_IO; /* errno is the kernel's error */
		if (r == MNL_CB_STOP)
			return 0;
	}
}

int nl_link_set(struct nl *nl, int ifindex, int up, uint32_t mtu)
{
	char buf[512];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_change = IFF_UP;
	ifi->ifi_flags = up ? IFF_UP : 0;
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	return talk(nl, nlh, NULL, NULL);
}

static size_t alen(uint8_t version)
{
	return version == 4 ? 4 : 16;
}

int nl_addr(struct nl *nl, int add, int ifindex, const struct route_prefix *a)
{
	char buf[512];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;
	/* No prefix route: an address the relay assigns never routes more
	 * than itself, whatever its prefix length (issue 16 item 5). */
	uint32_t flags = IFA_F_NOPREFIXROUTE;

	nlh->nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | (add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = a->version == 4 ? AF_INET : AF_INET6;
	ifa->ifa_prefixlen = a->len;
	ifa->ifa_index = (uint32_t)ifindex;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	if (a->version == 6)
		flags |= IFA_F_NODAD; /* a point-to-point tunnel has no neighbours */
	ifa->ifa_flags = (unsigned char)(flags & 0xff);
	mnl_attr_put(nlh, IFA_LOCAL, alen(a->version), a->addr);
	mnl_attr_put(nlh, IFA_ADDRESS, alen(a->version), a->addr);
	/* the flags beyond 8 bits (NOPREFIXROUTE) travel only here */
	if (add)
		mnl_attr_put_u32(nlh, IFA_FLAGS, flags);
	return talk(nl, nlh, NULL, NULL);
}

int nl_route(struct nl *nl, int add, int ifindex, const struct route_prefix *p,
	     const uint8_t *gw)
{
	char buf[512];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;

	nlh->nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = p->version == 4 ? AF_INET : AF_INET6;
	rtm->rtm_dst_len = p->len;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put(nlh, RTA_DST, alen(p->version), p->addr);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
	if (gw)
		mnl_attr_put(nlh, RTA_GATEWAY, alen(p->version), gw);
	return talk(nl, nlh, NULL, NULL);
}

struct route_answer {
	uint8_t version;
	uint8_t *gw;
	int has_gw;
	int oif;
};

static int route_attr(const struct nlattr *attr, void *data)
{
	struct route_answer *ans = data;
	size_t want = alen(ans->version);

	switch (mnl_attr_get_type(attr)) {
	case RTA_OIF:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
			ans->oif = (int)mnl_attr_get_u32(attr);
		break;
	case RTA_GATEWAY:
		if (mnl_attr_get_payload_len(attr) == want) {
			memcpy(ans->gw, mnl_attr_get_payload(attr), want);
			ans->has_gw = 1;
		}
		break;
	default:
		break;
	}
	return MNL_CB_OK;
}

static int route_msg(const struct nlmsghdr *nlh, void *data)
{
	if (nlh->nlmsg_type == RTM_NEWROUTE)
		mnl_attr_parse(nlh, sizeof(struct rtmsg), route_attr, data);
	return MNL_CB_OK;
}

int nl_route_get(struct nl *nl, uint8_t version, const uint8_t *dst,
		 uint8_t gw[16], int *phas_gw, int *poif)
{
	char buf[512];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;
	struct route_answer ans = { .version = version, .gw = gw };
	int r;

	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = version == 4 ? AF_INET : AF_INET6;
	rtm->rtm_dst_len = (unsigned char)(alen(version) * 8);
	mnl_attr_put(nlh, RTA_DST, alen(version), dst);
	memset(gw, 0, 16);
	if ((r = talk(nl, nlh, route_msg, &ans)) != 0)
		return r;
	if (ans.oif == 0) {
		errno = ENETUNREACH;
		return ZG_ERR_IO;
	}
	*phas_gw = ans.has_gw;
	*poif = ans.oif;
	return 0;
}

struct match_answer {
	uint8_t version;
	struct route_lookup *k;
};

static int match_attr(const struct nlattr *attr, void *data)
{
	struct match_answer *ans = data;

	if (mnl_attr_get_type(attr) == RTA_OIF && mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
		ans->k->oif = (int)mnl_attr_get_u32(attr);
	return MNL_CB_OK;
}

static int match_msg(const struct nlmsghdr *nlh, void *data)
{
	struct match_answer *ans = data;
	const struct rtmsg *rtm;

	if (nlh->nlmsg_type != RTM_NEWROUTE || nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*rtm)))
		return MNL_CB_OK;
	rtm = mnl_nlmsg_get_payload(nlh);
	ans->k->found = 1;
	ans->k->len = rtm->rtm_dst_len;
	ans->k->local = rtm->rtm_type == RTN_LOCAL;
	mnl_attr_parse(nlh, sizeof(*rtm), match_attr, data);
	return MNL_CB_OK;
}

int nl_route_match(struct nl *nl, const struct route_prefix *dst, struct route_lookup *pk)
{
	char buf[512];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;
	struct match_answer ans = { .version = dst->version, .k = pk };
	int r;

	memset(pk, 0, sizeof(*pk));
	nlh->nlmsg_type = RTM_GETROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = dst->version == 4 ? AF_INET : AF_INET6;
	rtm->rtm_dst_len = (unsigned char)(alen(dst->version) * 8);
	rtm->rtm_flags = RTM_F_FIB_MATCH; /* the route as configured, with its length */
	mnl_attr_put(nlh, RTA_DST, alen(dst->version), dst->addr);
	r = talk(nl, nlh, match_msg, &ans);
	if (r != 0) {
		/* no route, or one that refuses (unreachable, prohibit,
		 * blackhole): nothing of the machine's to capture */
		if (errno == ENETUNREACH || errno == EHOSTUNREACH || errno == EACCES ||
		    errno == EINVAL || errno == ESRCH) {
			memset(pk, 0, sizeof(*pk));
			return 0;
		}
		return r;
	}
	return 0;
}
