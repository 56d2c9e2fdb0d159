// The AWS SDK warns once per process that its 2027 releases need Node 22. The Lambdas run on the
// nodejs24.x runtime; only local runs and tests use the machine's Node 20, where the warning is noise.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] = 'true';
