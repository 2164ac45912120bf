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
 * starts).  New mounts stop at the filter until a supervisor answers them
 * through *listener (close-on-exec; the filtered process must not keep it,
 * or it could answer for itself).  0, or -1 with errno set. */
int card_seccomp_load(int *listener);
/* The supervisor's side, in the firmware: answers one pending mount,
 * letting it go on if its filesystem type is one the card uses, refusing it
 * with EPERM otherwise.  0, or -1 when the listener has nothing to read. */
int card_seccomp_answer(int listener);

#endif
