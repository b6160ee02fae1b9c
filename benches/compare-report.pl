#!/usr/bin/env perl
# Turns the measurements that benches/compare.sh leaves in its working
# folder into the markdown tables of BENCHMARKS.md.
#
# Usage: perl benches/compare-report.pl WORK_DIR > report.md
use strict;
use warnings;

my $work = shift or die "usage: compare-report.pl WORK_DIR\n";
my $MIB = 1 << 20;
my $GIB = 1 << 30;

# Targets of the stream filter: setting, corpus, minimum ratio to cat.
my @RATIO_TARGETS = (
    [ 'pipes', 'clean',       0.90 ],
    [ 'pipes', 'per_64k',     0.85 ],
    [ 'pipes', 'adversarial', 0.30 ],
    [ 'file',  'per_64k',     0.50 ],
);
my $MAX_RSS_MIB = 32;
my $MAX_SCALING_DIFFERENCE = 0.05;

sub rows {
    my ($name) = @_;
    open my $in, '<', "$work/$name" or die "cannot read $work/$name: $!\n";
    my @rows = map { chomp; [ split /\t/ ] } <$in>;
    close $in;
    return @rows;
}

sub median {
    my @sorted = sort { $a <=> $b } @_;
    return undef unless @sorted;
    my $mid = int(@sorted / 2);
    return @sorted % 2 ? $sorted[$mid] : ($sorted[ $mid - 1 ] + $sorted[$mid]) / 2;
}

my (%bytes, %planted, @corpus_order);
for my $row (rows('corpora.tsv')) {
    my ($name, $id, $bytes, $planted) = @$row;
    $bytes{$name}   = $bytes;
    $planted{$name} = $planted;
    push @corpus_order, $name;
}

# $time{corpus}{setting}{tool}{round} = seconds
my %time;
for my $row (rows('times.tsv')) {
    my ($corpus, $round, $setting, $tool, $seconds) = @$row;
    $time{$corpus}{$setting}{$tool}{$round} = $seconds;
}

my (%rss, %replaced, %tools_of);
for my $row (rows('runs.tsv')) {
    my ($corpus, $tool, $rss_kib, $out_bytes, $count) = @$row;
    $rss{$corpus}{$tool}      = $rss_kib / 1024;
    $replaced{$corpus}{$tool} = $count;
    push @{ $tools_of{$corpus} }, $tool;
}

sub throughput {
    my ($corpus, $setting, $tool) = @_;
    my $times = $time{$corpus}{$setting}{$tool} or return undef;
    my $median = median(values %$times);
    return undef unless $median;
    return $bytes{$corpus} / $median / $MIB;
}

# Median over the rounds of the ceiling's time over the tool's time.
# hyperfine reports 0 for a run shorter than its shell start-up, so such
# rounds are left out.
sub ratio {
    my ($corpus, $setting, $tool) = @_;
    my $times   = $time{$corpus}{$setting}{$tool} or return undef;
    my $ceiling = $time{$corpus}{$setting}{cat}   or return undef;
    my @ratios  = map { $ceiling->{$_} / $times->{$_} }
        grep { $times->{$_} > 0 && ($ceiling->{$_} // 0) > 0 } keys %$times;
    return median(@ratios);
}

sub fmt {
    my ($format, $value) = @_;
    return defined $value ? sprintf($format, $value) : 'n/a';
}

open my $machine, '<', "$work/machine.md" or die "cannot read machine.md: $!\n";
print "### Machine and run\n\n", <$machine>, "\n";
close $machine;

my ($rounds) = sort { $b <=> $a }
    map { scalar keys %{ $time{$_}{file}{cat} // {} } } keys %time;
$rounds //= 0;
print <<"EOF";
### Throughput

MiB/s is the corpus size over the median time of $rounds rounds.
"x cat" is the median over the rounds of cat's time over the tool's
time in the same round and setting: `cat FILE | cat > /dev/null` for
pipes, `cat < FILE > /dev/null` for the file. Peak RSS is from one run
per tool in the file setting; "replaced" counts the `[REDACTED` in that
run's output.

| corpus | tool | pipes MiB/s | pipes x cat | file MiB/s | file x cat | peak RSS MiB | replaced |
|---|---|--:|--:|--:|--:|--:|--:|
EOF
my %main = map { $_ => 1 } grep { !/@/ } @corpus_order;
for my $corpus (grep { $main{$_} } @corpus_order) {
    for my $tool (@{ $tools_of{$corpus} }) {
        printf "| %s | %s | %s | %s | %s | %s | %s | %d |\n", $corpus, $tool,
            fmt('%.0f', throughput($corpus, 'pipes', $tool)),
            fmt('%.2f', ratio($corpus, 'pipes', $tool)),
            fmt('%.0f', throughput($corpus, 'file', $tool)),
            fmt('%.2f', ratio($corpus, 'file', $tool)),
            fmt('%.1f', $rss{$corpus}{$tool}), $replaced{$corpus}{$tool};
    }
}

print "\n### Targets\n\n| target | measured | met |\n|---|--:|---|\n";
for my $target (@RATIO_TARGETS) {
    my ($setting, $corpus, $minimum) = @$target;
    next unless $main{$corpus};
    my $ratio = ratio($corpus, $setting, 'cfscrub');
    next unless defined $ratio;
    printf "| %s, %s: cfscrub at least %.2f x cat | %.2f | %s |\n", $setting,
        $corpus, $minimum, $ratio, $ratio >= $minimum ? 'yes' : 'no';
}
my @cfscrub_rss = map { $rss{$_}{cfscrub} // () } @corpus_order;
if (@cfscrub_rss) {
    my ($largest) = sort { $b <=> $a } @cfscrub_rss;
    printf "| peak RSS of cfscrub under %d MiB on every corpus | %.1f MiB | %s |\n",
        $MAX_RSS_MIB, $largest, $largest < $MAX_RSS_MIB ? 'yes' : 'no';
}

my @scaling = map { chomp; s/^scaling://r } do {
    open my $in, '<', "$work/scaling.txt" or die "cannot read scaling.txt: $!\n";
    <$in>;
};
my @scaling_rows;
for my $id (@scaling) {
    my ($small, $large) = grep { /^\Q$id\E@/ } @corpus_order;
    for my $setting (qw(pipes file)) {
        for my $tool (qw(cat cfscrub)) {
            my @per_gib = map {
                my $times = $time{$_}{$setting}{$tool};
                median(values %$times) / ($bytes{$_} / $GIB);
            } $small, $large;
            # A time of 0 means the run was too short to time.
            my $difference = $per_gib[0] > 0 ? $per_gib[1] / $per_gib[0] - 1 : undef;
            # The same difference for cfscrub's time over cat's in each
            # round, which cancels a load that changes between rounds.
            my ($small_ratio, $large_ratio) =
                map { ratio($_, $setting, $tool) } $small, $large;
            my $relative = $tool ne 'cat' && $small_ratio && $large_ratio
                ? $small_ratio / $large_ratio - 1 : undef;
            push @scaling_rows,
                [ $id, $setting, $tool, @per_gib, $difference, $relative ];
            next unless $tool eq 'cfscrub' && defined $difference;
            my $within = abs($difference) <= $MAX_SCALING_DIFFERENCE;
            printf "| %s, %s: cfscrub's time per GiB within %d%% from %s to %s | %+.1f%% | %s |\n",
                $setting, $id, $MAX_SCALING_DIFFERENCE * 100, $small =~ s/.*@//r . ' MiB',
                $large =~ s/.*@//r . ' MiB', $difference * 100, $within ? 'yes' : 'no';
        }
    }
}

if (@scaling_rows) {
    print "\n### Scaling\n\n";
    print "Seconds per GiB, from the median time of the rounds; both sizes";
    print " were timed in the same rounds. The last column is the difference";
    print " of cfscrub's time over cat's time on the same file in the same";
    print " round (median of the rounds), which is less sensitive to a load";
    print " that changes from one round to the next.\n\n";
    my ($small, $large) = grep { /^\Q$scaling[0]\E@/ } @corpus_order;
    printf "| corpus | setting | tool | s/GiB at %s MiB | s/GiB at %s MiB | difference | difference over cat |\n",
        $small =~ s/.*@//r, $large =~ s/.*@//r;
    print "|---|---|---|--:|--:|--:|--:|\n";
    for my $row (@scaling_rows) {
        my @differences = map {
            defined $_ ? sprintf('%+.1f%%', $_ * 100) : 'n/a'
        } @$row[ 5, 6 ];
        printf "| %s | %s | %s | %.3f | %.3f | %s | %s |\n", @$row[ 0 .. 4 ],
            @differences;
    }
    for my $id (@scaling) {
        my ($large) = grep { /^\Q$id\E@/ } reverse @corpus_order;
        printf "\nPeak RSS of cfscrub on %s at %s MiB: %.1f MiB.\n", $id,
            $large =~ s/.*@//r, $rss{$large}{cfscrub};
    }
}

my @huge = map { chomp; $_ } do {
    open my $in, '<', "$work/huge.txt" or die "cannot read huge.txt: $!\n";
    <$in>;
};
for my $id (@huge) {
    my ($small, $large) = grep { /^\Q$id\E-stream@/ } @corpus_order;
    my ($small_mib, $large_mib) = map { s/.*@//r } $small, $large;
    print "\n### Streaming $large_mib MiB through a pipe\n\n";
    print "`bench-corpus $id SIZE - | TOOL > /dev/null`: the generator";
    print " writes the corpus into the pipe as it makes it, so nothing is";
    print " stored. Seconds per GiB, from the median time of the rounds;";
    print " both sizes were timed in the same rounds, and each time includes";
    print " the generator's start-up. The last column is the difference of";
    print " cfscrub's time over cat's time in the same round (median of the";
    print " rounds).\n\n";
    print "| tool | s/GiB at $small_mib MiB | s/GiB at $large_mib MiB | difference | difference over cat |\n";
    print "|---|--:|--:|--:|--:|\n";
    for my $tool (qw(cat cfscrub)) {
        my @per_gib = map {
            median(values %{ $time{$_}{stream}{$tool} }) / ($bytes{$_} / $GIB);
        } $small, $large;
        my $difference = $per_gib[0] > 0 ? $per_gib[1] / $per_gib[0] - 1 : undef;
        my ($small_ratio, $large_ratio) =
            map { ratio($_, 'stream', $tool) } $small, $large;
        my $relative = $tool ne 'cat' && $small_ratio && $large_ratio
            ? $small_ratio / $large_ratio - 1 : undef;
        printf "| %s | %.3f | %.3f | %s | %s |\n", $tool, @per_gib,
            map { defined $_ ? sprintf('%+.1f%%', $_ * 100) : 'n/a' }
            $difference, $relative;
    }
    printf "\nPeak RSS of cfscrub while %s MiB streamed through it: %.1f MiB;"
        . " it replaced %d credentials, all that were planted.\n",
        $large_mib, $rss{$large}{cfscrub}, $replaced{$large}{cfscrub};
}

print "\n### Load average during each run\n\n";
print "From /proc/loadavg (1, 5 and 15 minutes) before and after the timed";
print " rounds.\n\n| run | before | after | seconds |\n|---|---|---|--:|\n";
for my $row (rows('loads.tsv')) {
    printf "| %s | %s | %s | %s |\n", @$row;
}

print <<'EOF';

### Commands

Each round is one `hyperfine --runs 1 --ignore-failure` call that runs,
in this order, every tool through pipes, `cat FILE | TOOL > /dev/null`,
then every tool from the file, `TOOL < FILE > /dev/null`, where TOOL is:

```
EOF
for my $row (rows('tools.tsv')) {
    printf "%-19s %s\n", @$row;
}
print "```\n";
