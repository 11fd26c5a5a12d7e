/*
 * ether_process.c - see ether_process.h.
 */
#include "ether_process.h"

#include <errno.h>

#if defined(__linux__)
#include <sys/prctl.h>

int ether_parent_death_signal(int signum)
{
    return prctl(PR_SET_PDEATHSIG, (unsigned long)signum, 0UL, 0UL, 0UL) == 0 ? 0 : -1;
}
#else
int ether_parent_death_signal(int signum)
{
    (void)signum;
    errno = ENOSYS;
    return -1;
}
#endif
