#include "api/api_ui.h"

#include <string.h>

#include "api_ui_assets.h"

#define N_ASSETS (sizeof(api_ui_assets) / sizeof(api_ui_assets[0]))

enum api_ui_kind api_ui_lookup(const char *path, const struct api_ui_asset **pa)
{
	*pa = NULL;
	if (strcmp(path, "/") == 0 || strcmp(path, "/ui") == 0)
		return API_UI_REDIRECT;
	if (strncmp(path, "/ui/", 4) != 0)
		return API_UI_NONE;
	path += 4;
	if (*path == '\0')
		path = "index.html";
	for (size_t i = 0; i < N_ASSETS; i++)
		if (strcmp(path, api_ui_assets[i].name) == 0) {
			*pa = &api_ui_assets[i];
			return API_UI_ASSET;
		}
	return API_UI_MISSING;
}

const struct api_ui_asset *api_ui_assets_all(size_t *pn)
{
	*pn = N_ASSETS;
	return api_ui_assets;
}
