/*
 * api_ui.h — the web UI's files, compiled into zgate-api
 * (scripts/embed-ui.sh makes them a table from src/api/ui/), and which
 * request path names which of them. No I/O: server.c sends the answers.
 */
#ifndef ZG_API_API_UI_H
#define ZG_API_API_UI_H

#include <stddef.h>

/* One file: its name under /ui/, its Content-Type, its bytes. */
struct api_ui_asset {
	const char *name;
	const char *type;
	const unsigned char *data;
	size_t len;
};

enum api_ui_kind {
	API_UI_NONE,     /* not a UI path: the API's routes decide */
	API_UI_REDIRECT, /* "/" or "/ui": 302 to "/ui/" */
	API_UI_ASSET,    /* a file */
	API_UI_MISSING   /* under /ui/ but no such file: 404 */
};

/* The Content-Security-Policy every UI answer carries: the UI's own files
 * only, no inline script or style, never framed. */
#define API_UI_CSP \
	"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

/* What path (without its query) names: API_UI_ASSET with *pa set
 * ("/ui/" is index.html), API_UI_REDIRECT, API_UI_MISSING or
 * API_UI_NONE (*pa NULL but for API_UI_ASSET). */
enum api_ui_kind api_ui_lookup(const char *path, const struct api_ui_asset **pa);

/* The table of files and its length (for tests). */
const struct api_ui_asset *api_ui_assets_all(size_t *pn);

#endif /* ZG_API_API_UI_H */
