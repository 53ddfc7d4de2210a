#!/usr/bin/perl
# A test HTTP service for sandboxes (the base image has perl, not python):
# perl httpd.pl ADDR PORT. GET /bytes/N answers N bytes; a request with an
# Upgrade header is switched (101) and echoed byte for byte; anything else
# answers what it received: method, path, Authorization, Cookie and body.
use strict;
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => $ARGV[0], LocalPort => $ARGV[1], Listen => 128, ReuseAddr => 1)
    or die "listen: $!";
$SIG{CHLD} = 'IGNORE';
while (my $c = $s->accept) {
    if (fork) { close $c; next }
    my $line = <$c>;
    my %h;
    while (my $l = <$c>) {
        last if $l =~ /^\r?\n$/;
        $h{lc $1} = $2 if $l =~ /^([^:]+):\s*(.*?)\r?\n$/;
    }
    my ($method, $path) = split / /, $line;
    if ($h{upgrade}) {
        print $c "HTTP/1.1 101 Switching Protocols\r\nUpgrade: $h{upgrade}\r\nConnection: Upgrade\r\n\r\n";
        $c->flush;
        while (sysread($c, my $b, 65536)) { syswrite($c, $b) }
        exit;
    }
    if ($path =~ m{^/bytes/(\d+)$}) {
        my $n = $1;
        print $c "HTTP/1.1 200 OK\r\nContent-Length: $n\r\nConnection: close\r\n\r\n";
        my $chunk = "x" x 65536;
        while ($n > 0) {
            my $k = $n < 65536 ? $n : 65536;
            syswrite($c, $chunk, $k) or last;
            $n -= $k;
        }
        exit;
    }
    my $body = '';
    read($c, $body, $h{'content-length'}) if $h{'content-length'};
    my $out = "method=$method path=$path auth=" . ($h{authorization} // 'none') . " cookie=" . ($h{cookie} // 'none')
        . " host=$h{host} body=$body\n";
    print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: aether_session=stolen; Path=/\r\nSet-Cookie: app=1; Path=/\r\nContent-Length: " . length($out) . "\r\nConnection: close\r\n\r\n$out";
    exit;
}
