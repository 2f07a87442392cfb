/*
 * test_api_ui.c — the web UI compiled into zgate-api: which paths name
 * which file, redirect or 404, each file's Content-Type, and what the
 * files may not contain under the page's CSP (inline script or style, a
 * resource of another site, HTML built from strings).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/api_ui.h"

static const struct api_ui_asset *get(const char *path)
{
	const struct api_ui_asset *a = (const void *)1;

	assert_int_equal(api_ui_lookup(path, &a), API_UI_ASSET);
	assert_non_null(a);
	return a;
}

/* The file's text, NUL-terminated (free() it). */
static char *text(const struct api_ui_asset *a)
{
	char *t = malloc(a->len + 1);

	assert_non_null(t);
	memcpy(t, a->data, a->len);
	t[a->len] = '\0';
	assert_int_equal(strlen(t), a->len); /* no NUL inside */
	return t;
}

static void test_paths(void **state)
{
	const struct api_ui_asset *a = (const void *)1;

	(void)state;
	assert_int_equal(api_ui_lookup("/", &a), API_UI_REDIRECT);
	assert_null(a);
	assert_int_equal(api_ui_lookup("/ui", &a), API_UI_REDIRECT);
	assert_string_equal(get("/ui/")->name, "index.html");
	assert_string_equal(get("/ui/index.html")->name, "index.html");
	assert_string_equal(get("/ui/")->type, "text/html; charset=utf-8");
	assert_string_equal(get("/ui/app.js")->type, "text/javascript; charset=utf-8");
	assert_string_equal(get("/ui/app.css")->type, "text/css; charset=utf-8");
	assert_string_equal(get("/ui/favicon.svg")->type, "image/svg+xml");
	assert_int_equal(api_ui_lookup("/ui/nope.js", &a), API_UI_MISSING);
	assert_null(a);
	assert_int_equal(api_ui_lookup("/ui/../app.js", &a), API_UI_MISSING);
	assert_int_equal(api_ui_lookup("/ui//app.js", &a), API_UI_MISSING);
	assert_int_equal(api_ui_lookup("/ui/app.js/", &a), API_UI_MISSING);
	assert_int_equal(api_ui_lookup("/uiapp.js", &a), API_UI_NONE);
	assert_int_equal(api_ui_lookup("/api/v1/policies", &a), API_UI_NONE);
	assert_int_equal(api_ui_lookup("/health", &a), API_UI_NONE);
	assert_int_equal(api_ui_lookup("", &a), API_UI_NONE);
	assert_int_equal(api_ui_lookup("/UI/", &a), API_UI_NONE);
}

/* What the CSP (default-src 'self', no 'unsafe-inline') would block, or
 * what would load another site's resource, is not in the files at all. */
static void test_content(void **state)
{
	size_t n;
	const struct api_ui_asset *all = api_ui_assets_all(&n);
	char *html = text(get("/ui/")), *js = text(get("/ui/app.js"));
	const char *p;

	(void)state;
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++) {
		char *t = text(&all[i]), *ns;

		assert_true(all[i].len > 100);
		/* an SVG's namespace is a name, not a resource */
		while ((ns = strstr(t, "xmlns=\"http://www.w3.org/2000/svg\"")) != NULL)
			memset(ns, '_', strlen("xmlns=\"http://www.w3.org/2000/svg\""));
		if (strstr(t, "http://") != NULL || strstr(t, "https://") != NULL ||
		    strstr(t, "//cdn") != NULL || strstr(t, "@import") != NULL)
			fail_msg("%s names another site", all[i].name);
		free(t);
	}
	/* every <script> has a src and no body; no style attribute or block,
	 * no on* handler */
	for (p = html; (p = strstr(p, "<script")) != NULL; p++) {
		const char *close = strstr(p, ">");

		assert_non_null(close);
		assert_true(memmem(p, (size_t)(close - p), " src=\"", 6) != NULL);
		assert_true(strncmp(close, "></script>", 10) == 0);
	}
	assert_null(strstr(html, "<style"));
	assert_null(strstr(html, " style="));
	assert_null(strstr(html, " onclick="));
	assert_null(strstr(html, " onload="));
	assert_non_null(strstr(html, "<script src=\"app.js\" defer></script>"));
	assert_non_null(strstr(html, "<link rel=\"stylesheet\" href=\"app.css\">"));
	/* the script builds the page from nodes and text, never from HTML */
	assert_null(strstr(js, "innerHTML"));
	assert_null(strstr(js, "outerHTML"));
	assert_null(strstr(js, "insertAdjacentHTML"));
	assert_null(strstr(js, "document.write"));
	assert_null(strstr(js, "eval("));
	assert_null(strstr(js, "new Function"));
	assert_null(strstr(js, "localStorage")); /* the token stays in the tab */
	free(html);
	free(js);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_content),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
