/* SPDX-License-Identifier: MIT */
/*
 * The card OS's seccomp filter: the second wall behind its user namespace.
 * It refuses, with EPERM, what no card ever needs and what reaches the
 * host's kernel beyond the card's own namespaces; the list and the reason
 * for each entry are in docs/architecture.md ("What a card can reach").
 */
#ifndef MIC_CARD_SECCOMP_H
#define MIC_CARD_SECCOMP_H

/* Loads the filter into the calling process (inherited by everything it
 * starts).  0, or -1 with errno set. */
int card_seccomp_load(void);

#endif
