/*
 * "sftprelay serve": the standalone embedded SFTP server.
 */
#ifndef SFTPRELAY_SERVE_H
#define SFTPRELAY_SERVE_H

/* Run the server until SIGTERM or SIGINT; argv[0] is "serve".  Returns
 * the exit status: 0, 1 (could not start), 2 (usage). */
int serve_main(int argc, char **argv);

#endif
