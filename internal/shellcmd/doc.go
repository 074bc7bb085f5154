// Package shellcmd finds the programs an SSH exec request asks the
// target's shell to start, so that policy can decide each of them instead
// of the command string as a whole.
//
// sshd(8) runs an exec request's command as `$SHELL -c COMMAND`, so the
// string is shell source: `ls; rm x`, `true && rm x`, `r”m x`, `/bin/rm`
// and `sh -c 'rm x'` all start rm. Parse reads the string with a
// maintained POSIX/Bash parser (mvdan.cc/sh/v3/syntax) and returns every
// simple command in it — in lists, pipelines, `&&`/`||`, subshells, blocks,
// functions, loops and command substitutions — with its program name as
// the shell would see it after quote removal, and the programs started
// through wrappers (`env`, `sudo`, `nohup`, `xargs`, `find -exec`, …) and
// through a shell's `-c` string when that string is literal.
//
// What cannot be known without running the command is reported in
// Analysis.Dynamic, one reason each: a variable, substitution, glob or
// brace in a program name, `eval`, `alias`, `trap`, `source`, a shell
// that reads its commands from standard input or a file, a `-c` string
// that is not literal, and assignments to variables that change which
// program runs (PATH, LD_PRELOAD, BASH_ENV, …).
//
// This is a guard on the commands a client asks the gateway to start, not
// a sandbox: a program that is allowed (an interpreter, an editor, a
// shell) can still do anything the target account can. It assumes the
// target account's shell reads POSIX or Bash syntax; csh and fish differ.
package shellcmd
