/* Lookup in the embedded dashboard files (the table is generated: web/embed.py). */
#include "host-daemon/http/assets.h"

#include <string.h>

/* See assets.h. */
const struct web_asset *web_asset_find(const char *path)
{
    for (size_t i = 0; i < web_assets_count; i++)
        if (strcmp(web_assets[i].path, path) == 0)
            return &web_assets[i];
    return NULL;
}
