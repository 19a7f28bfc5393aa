/* Domain XML -> bellows channel and limits, with libxml2. See libvirt_domain_xml.h. */
#include "host-daemon/libvirt/libvirt_domain_xml.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#define WEIGHT_MIN 1
#define WEIGHT_MAX 10000

static const struct {
    const char *name;
    uint64_t bytes;
} units[] = {
    {"b", 1},
    {"bytes", 1},
    {"k", UINT64_C(1) << 10},
    {"kib", UINT64_C(1) << 10},
    {"kb", UINT64_C(1000)},
    {"m", UINT64_C(1) << 20},
    {"mib", UINT64_C(1) << 20},
    {"mb", UINT64_C(1000000)},
    {"g", UINT64_C(1) << 30},
    {"gib", UINT64_C(1) << 30},
    {"gb", UINT64_C(1000000000)},
    {"t", UINT64_C(1) << 40},
    {"tib", UINT64_C(1) << 40},
    {"tb", UINT64_C(1000000000000)},
    {"p", UINT64_C(1) << 50},
    {"pib", UINT64_C(1) << 50},
    {"pb", UINT64_C(1000000000000000)},
    {"e", UINT64_C(1) << 60},
    {"eib", UINT64_C(1) << 60},
    {"eb", UINT64_C(1000000000000000000)},
};

int libvirt_parse_size(const char *text, const char *unit, uint64_t default_unit,
                       uint64_t *ret_bytes)
{
    uint64_t value = 0, multiplier = 0, bytes;
    const char *p = text;

    if (text == NULL || !isdigit((unsigned char)*p))
        return -EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        if (__builtin_mul_overflow(value, 10, &value) ||
            __builtin_add_overflow(value, (uint64_t)(*p - '0'), &value))
            return -ERANGE;
    }
    if (*p != '\0' && unit != NULL)
        return -EINVAL; /* a unit twice */
    if (unit == NULL)
        unit = p;
    if (*unit == '\0') {
        if (default_unit == 0)
            return -ENOENT;
        multiplier = default_unit;
    } else {
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (strcasecmp(unit, units[i].name) == 0)
                multiplier = units[i].bytes;
        if (multiplier == 0)
            return -EINVAL;
    }
    if (__builtin_mul_overflow(value, multiplier, &bytes))
        return -ERANGE;
    *ret_bytes = bytes;
    return 0;
}

const char *libvirt_limit_source_name(enum libvirt_limit_source source)
{
    switch (source) {
    case LIBVIRT_LIMIT_METADATA:
        return "metadata";
    case LIBVIRT_LIMIT_MEMTUNE:
        return "memtune";
    case LIBVIRT_LIMIT_MEMORY:
        return "memory";
    case LIBVIRT_LIMIT_DEFAULT:
        break;
    }
    return "default";
}

__attribute__((format(printf, 2, 3))) static void add_error(struct libvirt_domain_info *info,
                                                            const char *fmt, ...)
{
    size_t used = strlen(info->errors);
    size_t room = sizeof(info->errors) - used;
    va_list ap;

    if (used > 0 && room > 2) {
        memcpy(info->errors + used, "; ", 3);
        used += 2;
        room -= 2;
    }
    if (room <= 1)
        return;
    va_start(ap, fmt);
    vsnprintf(info->errors + used, room, fmt, ap);
    va_end(ap);
}

/* An element of the default (libvirt) namespace called `name`. */
static bool is_element(const xmlNode *node, const char *name)
{
    return node->type == XML_ELEMENT_NODE && node->ns == NULL &&
           strcmp((const char *)node->name, name) == 0;
}

static const xmlNode *child(const xmlNode *parent, const char *name)
{
    for (const xmlNode *n = parent->children; n; n = n->next)
        if (is_element(n, name))
            return n;
    return NULL;
}

/* Attribute value (no namespace) or NULL; valid while the document lives. */
static const char *attr(const xmlNode *node, const char *name)
{
    for (const xmlAttr *a = node->properties; a; a = a->next) {
        if (a->ns == NULL && strcmp((const char *)a->name, name) == 0 && a->children &&
            a->children->type == XML_TEXT_NODE)
            return (const char *)a->children->content;
    }
    return NULL;
}

/* The text of an element with only text in it, or NULL. */
static const char *text_of(const xmlNode *node)
{
    if (node && node->children && node->children->type == XML_TEXT_NODE &&
        node->children->next == NULL)
        return (const char *)node->children->content;
    return NULL;
}

/* libvirt's memory elements: a number in unit='...' (KiB when absent). */
static int element_size(const xmlNode *node, uint64_t *ret_bytes)
{
    const char *text = text_of(node);
    return libvirt_parse_size(text, attr(node, "unit"), 1024, ret_bytes);
}

static void copy_text(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static const char *size_error(int err)
{
    switch (err) {
    case -ENOENT:
        return "a unit is required (e.g. 1024M, 4G, 4GiB)";
    case -ERANGE:
        return "too large";
    default:
        return "not a size (digits then a unit: b, K/KiB, KB, M/MiB, MB, G/GiB, GB, T/TiB, TB)";
    }
}

struct metadata {
    bool has_floor, has_ceiling, has_weight;
    uint64_t floor, ceiling;
    uint32_t weight;
};

/* <bellows:guest floor=... ceiling=... weight=.../>: each valid attribute is taken,
 * each bad one reported and left out. */
static void parse_metadata(const xmlNode *guest, struct metadata *md,
                           struct libvirt_domain_info *info)
{
    for (const xmlAttr *a = guest->properties; a; a = a->next) {
        const char *name = (const char *)a->name;
        const char *value = (a->children && a->children->type == XML_TEXT_NODE)
                                ? (const char *)a->children->content
                                : "";
        int err;

        if (strcmp(name, "floor") == 0 || strcmp(name, "ceiling") == 0) {
            uint64_t bytes;
            err = libvirt_parse_size(value, NULL, 0, &bytes);
            if (err < 0) {
                add_error(info, "bellows:guest %s=\"%s\": %s", name, value, size_error(err));
            } else if (bytes == 0) {
                add_error(info, "bellows:guest %s=\"%s\": must be above 0", name, value);
            } else if (name[0] == 'f') {
                md->has_floor = true;
                md->floor = bytes;
            } else {
                md->has_ceiling = true;
                md->ceiling = bytes;
            }
        } else if (strcmp(name, "weight") == 0) {
            char *end;
            errno = 0;
            unsigned long w = strtoul(value, &end, 10);
            if (!isdigit((unsigned char)value[0]) || *end != '\0' || errno != 0 || w < WEIGHT_MIN ||
                w > WEIGHT_MAX) {
                add_error(info, "bellows:guest weight=\"%s\": must be an integer %d..%d", value,
                          WEIGHT_MIN, WEIGHT_MAX);
            } else {
                md->has_weight = true;
                md->weight = (uint32_t)w;
            }
        } else {
            add_error(info,
                      "bellows:guest %s=\"%s\": unknown attribute (known: floor, "
                      "ceiling, weight)",
                      name, value);
        }
    }
}

static const xmlNode *find_metadata(const xmlNode *domain, struct libvirt_domain_info *info)
{
    const xmlNode *metadata = child(domain, "metadata");
    const xmlNode *found = NULL;

    if (metadata == NULL)
        return NULL;
    for (const xmlNode *n = metadata->children; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE || n->ns == NULL || n->ns->href == NULL ||
            strcmp((const char *)n->ns->href, LIBVIRT_BELLOWS_XMLNS) != 0)
            continue;
        if (strcmp((const char *)n->name, LIBVIRT_BELLOWS_ELEMENT) != 0) {
            add_error(info,
                      "metadata element %s of the bellows namespace is unknown "
                      "(expected %s)",
                      (const char *)n->name, LIBVIRT_BELLOWS_ELEMENT);
            continue;
        }
        if (found) {
            add_error(info, "more than one bellows:guest element: the first one counts");
            continue;
        }
        found = n;
    }
    return found;
}

/* The bellows channel among <devices><channel>: its socket path, or an error. */
static void find_channel(const xmlNode *domain, struct libvirt_domain_info *info)
{
    const xmlNode *devices = child(domain, "devices");

    if (devices == NULL)
        return;
    for (const xmlNode *ch = devices->children; ch; ch = ch->next) {
        const xmlNode *target, *source;
        const char *type, *mode, *path;

        if (!is_element(ch, "channel"))
            continue;
        target = child(ch, "target");
        if (target == NULL || !attr(target, "type") ||
            strcmp(attr(target, "type"), "virtio") != 0 || !attr(target, "name") ||
            strcmp(attr(target, "name"), LIBVIRT_BELLOWS_CHANNEL) != 0)
            continue;
        if (info->has_channel) {
            add_error(info, "more than one %s channel: the first one counts",
                      LIBVIRT_BELLOWS_CHANNEL);
            continue;
        }
        info->has_channel = true;
        type = attr(ch, "type");
        if (type == NULL || strcmp(type, "unix") != 0) {
            add_error(info, "channel %s has type='%s': bellowsd needs type='unix'",
                      LIBVIRT_BELLOWS_CHANNEL, type ? type : "");
            continue;
        }
        source = child(ch, "source");
        mode = source ? attr(source, "mode") : NULL;
        path = source ? attr(source, "path") : NULL;
        if (mode != NULL && strcmp(mode, "bind") != 0) {
            add_error(info,
                      "channel %s has source mode='%s': QEMU must listen "
                      "(mode='bind') and bellowsd connects",
                      LIBVIRT_BELLOWS_CHANNEL, mode);
        } else if (path == NULL || path[0] != '/') {
            add_error(info,
                      "channel %s has no absolute source path (a running domain's "
                      "live XML has one)",
                      LIBVIRT_BELLOWS_CHANNEL);
        } else if (strlen(path) > LIBVIRT_CHANNEL_PATH_MAX) {
            add_error(info,
                      "channel %s source path is longer than %d bytes, too long for "
                      "a unix socket",
                      LIBVIRT_BELLOWS_CHANNEL, LIBVIRT_CHANNEL_PATH_MAX);
        } else {
            copy_text(info->channel_path, sizeof(info->channel_path), path);
        }
    }
}

static void choose_limits(const xmlNode *domain, const struct metadata *md,
                          const struct libvirt_domain_defaults *defaults,
                          struct libvirt_domain_info *info)
{
    const xmlNode *memtune = child(domain, "memtune");
    const xmlNode *guarantee = memtune ? child(memtune, "min_guarantee") : NULL;
    uint64_t bytes;

    /* Ceiling first: floors are checked against it. */
    info->ceiling_bytes = info->memory_bytes;
    info->ceiling_from = LIBVIRT_LIMIT_MEMORY;
    if (md->has_ceiling) {
        if (md->ceiling > info->memory_bytes)
            add_error(info,
                      "bellows:guest ceiling %llu bytes is above <memory> %llu bytes, "
                      "the most the balloon can give: using <memory>",
                      (unsigned long long)md->ceiling, (unsigned long long)info->memory_bytes);
        else {
            info->ceiling_bytes = md->ceiling;
            info->ceiling_from = LIBVIRT_LIMIT_METADATA;
        }
    }

    info->floor_from = LIBVIRT_LIMIT_DEFAULT;
    info->floor_bytes =
        defaults->floor_bytes < info->ceiling_bytes ? defaults->floor_bytes : info->ceiling_bytes;
    if (guarantee) {
        int err = element_size(guarantee, &bytes);
        if (err < 0)
            add_error(info, "<memtune><min_guarantee>: %s", size_error(err));
        else if (bytes > info->ceiling_bytes)
            add_error(info,
                      "<memtune><min_guarantee> %llu bytes is above the ceiling %llu "
                      "bytes: not used as floor",
                      (unsigned long long)bytes, (unsigned long long)info->ceiling_bytes);
        else if (bytes > 0) {
            info->floor_bytes = bytes;
            info->floor_from = LIBVIRT_LIMIT_MEMTUNE;
        }
    }
    if (md->has_floor) {
        if (md->floor > info->ceiling_bytes)
            add_error(info,
                      "bellows:guest floor %llu bytes is above the ceiling %llu bytes: "
                      "using the %s floor",
                      (unsigned long long)md->floor, (unsigned long long)info->ceiling_bytes,
                      libvirt_limit_source_name(info->floor_from));
        else {
            info->floor_bytes = md->floor;
            info->floor_from = LIBVIRT_LIMIT_METADATA;
        }
    }

    info->weight = defaults->weight;
    info->weight_from = LIBVIRT_LIMIT_DEFAULT;
    if (md->has_weight) {
        info->weight = md->weight;
        info->weight_from = LIBVIRT_LIMIT_METADATA;
    }
}

int libvirt_domain_xml_parse(const char *xml, size_t len,
                             const struct libvirt_domain_defaults *defaults,
                             struct libvirt_domain_info *ret)
{
    struct libvirt_domain_info *info;
    struct metadata md = {0};
    const xmlNode *domain, *memory, *current, *guest;
    xmlDoc *doc;
    int err = -EINVAL;

    if (xml == NULL || defaults == NULL || ret == NULL || len > INT32_MAX)
        return -EINVAL;
    info = calloc(1, sizeof(*info));
    if (info == NULL)
        return -ENOMEM;
    /* No network, no entity expansion, no DTD: the text is data, never fetched from. */
    doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc == NULL)
        goto out;
    domain = xmlDocGetRootElement(doc);
    if (domain == NULL || !is_element(domain, "domain"))
        goto out;

    copy_text(info->name, sizeof(info->name), text_of(child(domain, "name")));
    copy_text(info->uuid, sizeof(info->uuid), text_of(child(domain, "uuid")));
    memory = child(domain, "memory");
    if (memory == NULL || element_size(memory, &info->memory_bytes) < 0 || info->memory_bytes == 0)
        goto out;
    current = child(domain, "currentMemory");
    if (current == NULL || element_size(current, &info->current_memory_bytes) < 0)
        info->current_memory_bytes = info->memory_bytes;

    find_channel(domain, info);
    guest = find_metadata(domain, info);
    if (guest)
        parse_metadata(guest, &md, info);
    choose_limits(domain, &md, defaults, info);

    *ret = *info;
    err = 0;
out:
    xmlFreeDoc(doc);
    free(info);
    return err;
}
