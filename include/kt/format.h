/* format.h: the wire formats ktd speaks. Kept in its own tiny header so
 * both the config (target format) and the wire codecs can include it. */
#ifndef KT_FORMAT_H
#define KT_FORMAT_H

enum kt_format { KT_FMT_OPENAI, KT_FMT_ANTHROPIC };

#endif
