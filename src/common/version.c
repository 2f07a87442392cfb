/* version.c — opt_version() (see opt.h): what --version prints. Apart
 * from opt.c so that only the programs pull the libraries' version
 * functions in. */
#include "opt.h"

#include <stdio.h>

#include "zg_build.h" /* ZG_COMMIT, written by the Makefile */

#include <event2/event.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#if __has_include("lwip/init.h")
#include "lwip/init.h"
#endif

#ifndef ZG_VERSION
#define ZG_VERSION "unknown"
#endif
#ifndef ZG_COMMIT
#define ZG_COMMIT "unknown"
#endif
#ifndef LWIP_VERSION_STRING
#define LWIP_VERSION_STRING "unknown"
#endif

size_t opt_version(const char *prog, char *buf, size_t buflen)
{
	const ngtcp2_info *ng = ngtcp2_version(0);
	const nghttp3_info *h3 = nghttp3_version(0);
	int w;

	w = snprintf(buf, buflen,
		     "%s %s (commit %s)\n"
		     "ngtcp2 %s\n"
		     "nghttp3 %s\n"
		     "wolfSSL %s\n"
		     "lwIP %s\n"
		     "libevent %s\n",
		     prog, ZG_VERSION, ZG_COMMIT, ng != NULL ? ng->version_str : "unknown",
		     h3 != NULL ? h3->version_str : "unknown", wolfSSL_lib_version(),
		     LWIP_VERSION_STRING, event_get_version());
	return w < 0 ? 0 : (size_t)w;
}
