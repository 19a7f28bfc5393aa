/* What bellowsd needs from a libvirt domain's XML (virDomainGetXMLDesc): its bellows
 * channel socket and its operator limits (floor, ceiling, weight). Pure: a string in,
 * a struct out; libxml2 parses, nothing is read from disk or the network.
 *
 * The bellows channel is
 *   <channel type='unix'><source mode='bind' path='SOCKET'/>
 *     <target type='virtio' name='org.bellows.pressure.0'/></channel>
 * and the limits come from, in this order (docs/libvirt.md):
 *   floor    <metadata><bellows:guest floor=.../>, <memtune><min_guarantee>, default
 *   ceiling  <metadata><bellows:guest ceiling=.../>, <memory> (the most a balloon gives)
 *   weight   <metadata><bellows:guest weight=.../>, default
 * with xmlns:bellows = LIBVIRT_BELLOWS_XMLNS. A bad attribute is reported in `errors`
 * (which attribute, what is wrong) and the next source in the order is used.
 */
#ifndef BELLOWS_LIBVIRT_DOMAIN_XML_H
#define BELLOWS_LIBVIRT_DOMAIN_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LIBVIRT_BELLOWS_CHANNEL "org.bellows.pressure.0"
#define LIBVIRT_BELLOWS_XMLNS "https://bellows.dev/xmlns/guest/1"
#define LIBVIRT_BELLOWS_ELEMENT "guest"

/* Longest unix socket path (sun_path holds 108 bytes with its NUL). */
#define LIBVIRT_CHANNEL_PATH_MAX 107
#define LIBVIRT_DOMAIN_NAME_MAX 255
#define LIBVIRT_DOMAIN_ERRORS_MAX 1024

/* Where a limit came from. */
enum libvirt_limit_source {
    LIBVIRT_LIMIT_DEFAULT = 0, /* daemon default */
    LIBVIRT_LIMIT_METADATA,    /* <bellows:guest> */
    LIBVIRT_LIMIT_MEMTUNE,     /* <memtune><min_guarantee> */
    LIBVIRT_LIMIT_MEMORY,      /* <memory> */
};

/* Daemon defaults for what a domain does not say. */
struct libvirt_domain_defaults {
    uint64_t floor_bytes;
    uint32_t weight;
};

struct libvirt_domain_info {
    char name[LIBVIRT_DOMAIN_NAME_MAX + 1];
    char uuid[37];                 /* "" when the XML has none */
    uint64_t memory_bytes;         /* <memory>: boot size, the balloon's maximum */
    uint64_t current_memory_bytes; /* <currentMemory>, or memory_bytes if absent */

    bool has_channel;                                /* a bellows channel is declared */
    char channel_path[LIBVIRT_CHANNEL_PATH_MAX + 1]; /* "" when unusable (see errors) */

    uint64_t floor_bytes;
    uint64_t ceiling_bytes;
    uint32_t weight;
    enum libvirt_limit_source floor_from, ceiling_from, weight_from;

    /* Problems that did not stop the parse, "; "-separated, "" when none. The values
     * above already hold the fallbacks. */
    char errors[LIBVIRT_DOMAIN_ERRORS_MAX];
};

/* Parse `len` bytes of domain XML into *ret. Returns 0 (check ret->errors for bad
 * metadata or channel problems), -EINVAL when the text is not a domain XML with a valid
 * <memory>, -ENOMEM. On error *ret is untouched. */
int libvirt_domain_xml_parse(const char *xml, size_t len,
                             const struct libvirt_domain_defaults *defaults,
                             struct libvirt_domain_info *ret);

/* Parse a size with a unit as libvirt spells them (b, bytes, k, KiB, KB, M, MiB, MB, G,
 * GiB, GB, T, TiB, TB, P, PiB, PB, E, EiB, EB; case-insensitive; K = KiB). `default_unit`
 * is the multiplier used when the text has no unit, or 0 to require one. `unit`, when not
 * NULL, is a separate unit (libvirt's unit='...' attribute) and `text` a bare number.
 * Returns 0, -EINVAL (not a number, or an unknown unit), -ENOENT (a unit is required and
 * missing) or -ERANGE (more than 2^64-1 bytes). */
int libvirt_parse_size(const char *text, const char *unit, uint64_t default_unit,
                       uint64_t *ret_bytes);

/* Name of a limit source, for logs: "metadata", "memtune", "memory", "default". */
const char *libvirt_limit_source_name(enum libvirt_limit_source source);

#endif
