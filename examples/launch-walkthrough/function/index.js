// The function from the VPC Lattice launch post, unchanged: it answers "Hello from the function"
// to every invocation. run.sh deploys it to Trellis with `aws lambda create-function`
// (runtime nodejs20.x, handler index.handler).
exports.handler = async (event) => {
    const response = {
        statusCode: 200,
        body: JSON.stringify('Hello from the function'),
    };
    return response;
};
