/* The dashboard's files (web/), embedded in bellowsd at build time by web/embed.py, so the
 * daemon serves them itself and the page loads nothing from anywhere else. */
#ifndef BELLOWS_ASSETS_H
#define BELLOWS_ASSETS_H

#include <stddef.h>

struct web_asset {
    const char *path; /* as in the URL, without the leading slash: "index.html" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted, from the content's hash */
};

extern const struct web_asset web_assets[];
extern const size_t web_assets_count;

/* The file at path ("index.html", "vendor/uPlot.iife.min.js"), NULL if none. */
const struct web_asset *web_asset_find(const char *path);

#endif
