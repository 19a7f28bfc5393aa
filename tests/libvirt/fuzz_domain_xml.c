/* libFuzzer: libvirt_domain_xml_parse and libvirt_parse_size over arbitrary bytes. Besides
 * memory errors (ASan/UBSan), it checks what the daemon relies on: on success the limits
 * are usable (0 < floor <= ceiling <= memory, weight 1..10000), a channel path implies a
 * channel, every string is terminated. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/libvirt/libvirt_domain_xml.h"

static const struct libvirt_domain_defaults defaults = {.floor_bytes = 128u << 20, .weight = 100};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct libvirt_domain_info info;
    char text[64];
    uint64_t bytes;

    if (libvirt_domain_xml_parse((const char *)data, size, &defaults, &info) == 0) {
        if (info.floor_bytes == 0 || info.floor_bytes > info.ceiling_bytes ||
            info.ceiling_bytes > info.memory_bytes || info.weight < 1 || info.weight > 10000)
            abort();
        if (info.channel_path[0] != '\0' && !info.has_channel)
            abort();
        if (memchr(info.errors, '\0', sizeof(info.errors)) == NULL ||
            memchr(info.name, '\0', sizeof(info.name)) == NULL ||
            memchr(info.uuid, '\0', sizeof(info.uuid)) == NULL ||
            memchr(info.channel_path, '\0', sizeof(info.channel_path)) == NULL)
            abort();
    }
    /* The size syntax alone, on a terminated prefix. */
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    libvirt_parse_size(text, NULL, 0, &bytes);
    libvirt_parse_size(text, NULL, 1024, &bytes);
    return 0;
}
