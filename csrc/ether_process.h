/*
 * ether_process.h - what an instance process asks of the kernel about itself.
 *
 * Here rather than through ctypes: an instance has the C core loaded anyway, and
 * importing ctypes cost each process about 10 ms of its start.
 */
#ifndef ETHER_PROCESS_H
#define ETHER_PROCESS_H

/* Ask for signal `signum` when the parent (the thread that forked this process)
 * exits: prctl(PR_SET_PDEATHSIG). 0 on success; -1 with errno set (ENOSYS where
 * the kernel has no such request). */
int ether_parent_death_signal(int signum);

#endif /* ETHER_PROCESS_H */
