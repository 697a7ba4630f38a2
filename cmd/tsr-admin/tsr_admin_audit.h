/* cmd/tsr-admin: the "audit" subcommand (audit.c), built when pkg/audit is. */
#ifndef TSR_ADMIN_AUDIT_H
#define TSR_ADMIN_AUDIT_H

/* argv[0] is "audit". Returns the process exit code. */
int tsr_admin_audit_main(int argc, char **argv);

#endif
